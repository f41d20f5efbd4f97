// Sealpost address book: turns every <input data-address-book> into a combobox
// (WAI-ARIA 1.2 combobox pattern, with a listbox popup) that suggests people
// from /contacts/suggest while an address is typed.
//
// - The field holds comma-separated addresses; suggestions are for the one
//   where the caret is. data-address-book="single" holds one address.
// - Keyboard alone: Down/Up move through suggestions (Down opens the list),
//   Enter picks, Escape closes (a second Escape leaves the text as typed),
//   Tab leaves. Touch and mouse: tap a suggestion (large targets).
// - Picking a suggestion whose relationship the practice knows fills a
//   select[name="role:<address>"] in the same form, now or when it appears,
//   and fires "address-book:pick" (detail: the suggestion) on the input.
// - data-address-book-submit submits the form after a pick (a search box).
// Without this script the inputs stay plain text fields that work as before.
(() => {
  'use strict';

  const DELAY_MS = 150;
  const STYLESHEET = '/static/address-book.css';
  let counter = 0;

  function linkStylesheet() {
    if (document.querySelector(`link[href="${STYLESHEET}"]`)) return;
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = STYLESHEET;
    document.head.appendChild(link);
  }

  /** The token at `caret` in a comma-separated value: [start, end, text]. */
  function tokenAt(value, caret, single) {
    if (single) return [0, value.length, value.trim()];
    const start = value.lastIndexOf(',', caret - 1) + 1;
    let end = value.indexOf(',', caret);
    if (end < 0) end = value.length;
    return [start, end, value.slice(start, end).trim()];
  }

  /** Sets a role select for `address` in `form`, if there is one and it offers the role. */
  function fillRole(form, address, relationship) {
    if (!form || !relationship) return false;
    const select = form.querySelector(`select[name="${CSS.escape(`role:${address}`)}"]`);
    if (!select || ![...select.options].some((o) => o.value === relationship)) return false;
    if (select.value !== relationship) {
      select.value = relationship;
      select.dispatchEvent(new Event('change', { bubbles: true }));
    }
    return true;
  }

  /** Picked roles by form, so selects that appear later are filled too. */
  const picked = new WeakMap();

  function remember(form, address, relationship) {
    if (!form || !relationship) return;
    let roles = picked.get(form);
    if (!roles) {
      roles = new Map();
      picked.set(form, roles);
      new MutationObserver(() => {
        for (const [a, r] of roles) fillRole(form, a, r);
      }).observe(form, { childList: true, subtree: true });
    }
    roles.set(address, relationship);
    fillRole(form, address, relationship);
  }

  function enhance(input) {
    if (input.dataset.addressBookReady) return;
    input.dataset.addressBookReady = '1';
    const single = input.dataset.addressBook === 'single';
    let id;
    do id = `address-book-${++counter}`; while (document.getElementById(`${id}-list`));

    const wrapper = document.createElement('div');
    wrapper.className = 'ab-combobox';
    input.parentNode.insertBefore(wrapper, input);
    wrapper.appendChild(input);

    const list = document.createElement('ul');
    list.id = `${id}-list`;
    list.className = 'ab-listbox';
    list.setAttribute('role', 'listbox');
    const label = input.labels && input.labels[0] ? input.labels[0].textContent.trim() : 'Address';
    list.setAttribute('aria-label', `Suggestions for ${label}`);
    list.hidden = true;
    wrapper.appendChild(list);

    const status = document.createElement('div');
    status.className = 'ab-hidden';
    status.setAttribute('role', 'status');
    status.setAttribute('aria-live', 'polite');
    wrapper.appendChild(status);

    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-expanded', 'false');
    input.setAttribute('aria-controls', list.id);
    input.setAttribute('autocomplete', 'off');
    input.setAttribute('autocapitalize', 'off');
    input.setAttribute('spellcheck', 'false');

    let items = []; // the suggestions shown
    let active = -1; // index of the highlighted one
    let timer = 0;
    let controller = null;
    let shownFor = null; // the token the list was made for
    const cache = new Map();

    function close() {
      list.hidden = true;
      list.replaceChildren();
      items = [];
      active = -1;
      input.setAttribute('aria-expanded', 'false');
      input.removeAttribute('aria-activedescendant');
    }

    function highlight(index) {
      active = index;
      [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === index)));
      if (index < 0) {
        input.removeAttribute('aria-activedescendant');
        return;
      }
      const option = list.children[index];
      input.setAttribute('aria-activedescendant', option.id);
      option.scrollIntoView({ block: 'nearest' });
    }

    function show(suggestions, token) {
      shownFor = token;
      items = suggestions;
      active = -1;
      list.replaceChildren(...suggestions.map((s, i) => {
        const li = document.createElement('li');
        li.id = `${id}-option-${i}`;
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', 'false');
        li.className = 'ab-option';
        const name = document.createElement('span');
        name.className = 'ab-name';
        name.textContent = s.name || s.address;
        li.appendChild(name);
        if (s.name) {
          const address = document.createElement('span');
          address.className = 'ab-address';
          address.textContent = s.address;
          li.appendChild(address);
        }
        if (s.label) {
          const role = document.createElement('span');
          role.className = 'ab-label';
          role.textContent = s.label;
          li.appendChild(role);
        }
        // Keep focus in the field while a pointer presses an option.
        li.addEventListener('pointerdown', (e) => e.preventDefault());
        li.addEventListener('mousedown', (e) => e.preventDefault());
        li.addEventListener('click', () => pick(i));
        return li;
      }));
      const open = suggestions.length > 0;
      list.hidden = !open;
      input.setAttribute('aria-expanded', String(open));
      input.removeAttribute('aria-activedescendant');
      const n = suggestions.length;
      status.textContent = n === 0 ? 'No suggestions.' : `${n} suggestion${n === 1 ? '' : 's'}; use the up and down arrows to choose.`;
    }

    function pick(index) {
      const s = items[index];
      if (!s) return;
      const value = input.value;
      const [start, end] = tokenAt(value, input.selectionStart ?? value.length, single);
      let text;
      let caret;
      if (single) {
        text = s.address;
        caret = text.length;
      } else {
        const before = value.slice(0, start).replace(/\s*$/, '');
        const after = value.slice(end).replace(/^\s*,?\s*/, '');
        const head = before ? `${before} ${s.address}` : s.address;
        text = after ? `${head}, ${after}` : `${head}, `;
        caret = head.length + 2;
      }
      input.value = text;
      input.setSelectionRange(caret, caret);
      close();
      status.textContent = `${s.name || s.address} added.`;
      remember(input.form, s.address, s.relationship);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.dispatchEvent(new CustomEvent('address-book:pick', { bubbles: true, detail: s }));
      if ('addressBookSubmit' in input.dataset && input.form) input.form.requestSubmit();
    }

    async function lookup() {
      const [, , token] = tokenAt(input.value, input.selectionStart ?? input.value.length, single);
      if (!token) {
        close();
        return;
      }
      if (token === shownFor && !list.hidden) return;
      if (cache.has(token)) {
        show(cache.get(token), token);
        return;
      }
      if (controller) controller.abort();
      controller = new AbortController();
      try {
        const response = await fetch(`/contacts/suggest?q=${encodeURIComponent(token)}`, {
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
          signal: controller.signal,
        });
        if (!response.ok) {
          close();
          return;
        }
        const body = await response.json();
        const suggestions = Array.isArray(body.suggestions) ? body.suggestions : [];
        cache.set(token, suggestions);
        // Only if the field still asks for this token and has the focus.
        const [, , now] = tokenAt(input.value, input.selectionStart ?? input.value.length, single);
        if (now === token && document.activeElement === input) show(suggestions, token);
      } catch (error) {
        if (error.name !== 'AbortError') close();
      }
    }

    input.addEventListener('input', (e) => {
      if (e instanceof CustomEvent || !e.isTrusted) return;
      shownFor = null;
      clearTimeout(timer);
      timer = setTimeout(lookup, DELAY_MS);
    });

    input.addEventListener('keydown', (e) => {
      if (e.isComposing) return;
      const open = !list.hidden && items.length > 0;
      switch (e.key) {
        case 'ArrowDown':
          e.preventDefault();
          if (!open) {
            shownFor = null;
            lookup();
          } else {
            highlight(active + 1 >= items.length ? 0 : active + 1);
          }
          break;
        case 'ArrowUp':
          if (open) {
            e.preventDefault();
            highlight(active <= 0 ? items.length - 1 : active - 1);
          }
          break;
        case 'Enter':
          if (open && active >= 0) {
            e.preventDefault();
            pick(active);
          }
          break;
        case 'Escape':
          if (open) {
            e.preventDefault();
            close();
          }
          break;
        case 'Tab':
          close();
          break;
        default:
      }
    });

    input.addEventListener('blur', () => {
      clearTimeout(timer);
      close();
    });
  }

  function start() {
    const inputs = document.querySelectorAll('input[data-address-book]');
    if (inputs.length === 0) return;
    linkStylesheet();
    inputs.forEach(enhance);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
