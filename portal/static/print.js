// The print view's Print button: shown only where a script can open the
// browser's print dialog (without it, the page says to use the Print command).
(function () {
  var button = document.querySelector('[data-print]');
  if (!button || typeof window.print !== 'function') return;
  button.hidden = false;
  button.addEventListener('click', function () { window.print(); });
})();
