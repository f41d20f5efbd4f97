// Asks the relationship of each new address right in the compose form, as the
// addresses are typed: it asks the server which of them it doesn't know
// (/compose/new-addresses) and adds a `role:<address>` select for each (the
// address book's script fills one in when a suggestion carries a role).
// Without this script the server asks when the form is sent, keeping
// everything typed.
(function () {
  'use strict';
  const form = document.querySelector('form.compose');
  const box = document.getElementById('roles');
  const options = document.getElementById('role-options');
  if (!form || !box || !options || !window.fetch) return;
  const list = box.querySelector('[data-role-list]');
  const fields = ['to', 'cc', 'bcc'].map((name) => form.querySelector(`[name="${name}"]`)).filter(Boolean);
  const reply = form.querySelector('input[name="reply_to_message"]');
  let timer = null;
  let asked = 0;
  let made = 0;

  function question(address) {
    made += 1;
    const n = made;
    const row = document.createElement('div');
    row.className = 'role-question';
    row.dataset.address = address;
    const label = document.createElement('label');
    label.htmlFor = `role-js-${n}`;
    label.textContent = address;
    const select = document.createElement('select');
    select.id = `role-js-${n}`;
    select.name = `role:${address}`;
    select.required = true;
    select.appendChild(options.content.cloneNode(true));
    row.append(label, select);
    return row;
  }

  async function refresh() {
    const params = new URLSearchParams();
    for (const field of fields) params.set(field.name, field.value);
    if (reply) params.set('reply_to_message', reply.value);
    const mine = ++asked;
    let answer;
    try {
      const response = await fetch(`/compose/new-addresses?${params}`, { headers: { Accept: 'application/json' } });
      if (!response.ok) return;
      answer = await response.json();
    } catch (_) {
      return; // offline: the server asks when the form is sent
    }
    if (mine !== asked) return; // an older answer
    const wanted = (answer.ask || []).map((a) => a.toLowerCase());
    for (const row of Array.from(list.children)) {
      if (!wanted.includes(row.dataset.address)) row.remove();
    }
    const have = Array.from(list.children).map((row) => row.dataset.address);
    for (const address of wanted) {
      if (!have.includes(address)) list.appendChild(question(address));
    }
    box.hidden = list.children.length === 0;
  }

  for (const field of fields) {
    field.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 500);
    });
    field.addEventListener('change', refresh);
  }
})();
