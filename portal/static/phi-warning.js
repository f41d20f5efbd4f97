// Warns as the sender types when the compose form's notification note looks
// like it holds PHI: the note goes by ordinary email. The same check runs on
// the server (portal/src/pages/compose_phi.rs), which asks to confirm before
// sending; this is only the early, friendly half. The diagnosis words come
// from the page (data-phi-words, from portal/static/phi-words.txt).
(function () {
  'use strict';
  const note = document.querySelector('textarea[data-phi-check]');
  if (!note) return;
  const box = document.getElementById('note-warning');
  if (!box) return;
  const words = (note.dataset.phiWords || '').split('|').filter(Boolean);
  const checks = [
    [/(^|[^\d])(\d{1,2}[/.-]\d{1,2}[/.-](\d{4}|\d{2})|\d{4}-\d{1,2}-\d{1,2})(?![\d])/, 'a date (such as a date of birth)'],
    [/\bdob\b|date of birth|born on/i, 'a date of birth'],
    [/(^|[^\d-])(\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})(?![\d-])/, 'a Social Security number'],
    [/(\+?1[ .-]?)?(\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d)|(^|[^\d])\d{10}(?!\d)/, 'a phone number'],
    [/\b(mrn|ssn)\b|(chart|record) #|(^|[^\d])\d{5,}(?!\d)/i, 'a record or chart number'],
  ];
  const serverText = box.textContent.trim();
  function findings(text) {
    const found = [];
    for (const [pattern, what] of checks) {
      if (pattern.test(text) && !found.includes(what)) found.push(what);
    }
    const lower = text.toLowerCase();
    const tokens = new Set(lower.split(/[^\p{L}\p{N}']+/u));
    for (const word of words) {
      if (word.includes(' ') ? lower.includes(word) : tokens.has(word)) found.push('the word “' + word + '”');
    }
    return found;
  }
  function update() {
    const found = findings(note.value);
    if (found.length === 0) {
      box.hidden = true;
      box.textContent = '';
      return;
    }
    const text = 'This note looks like it holds health information: ' + found.join(', ') +
      '. It goes by ordinary email. Move it to the secure message below.';
    if (box.textContent.trim() !== text) {
      box.textContent = '';
      const p = document.createElement('p');
      p.textContent = text;
      box.appendChild(p);
    }
    box.hidden = false;
  }
  // Keep the server's wording (it asks to confirm) until the note changes.
  note.addEventListener('input', update);
  if (!serverText) update();
})();
