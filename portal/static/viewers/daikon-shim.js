// daikon 1.2.46's release bundle (daikon-min.js, unchanged) attaches its parts
// only `typeof require !== 'undefined'` (it then calls its own bundled parts,
// never this function), and leaves the library in the global `_2`. This runs
// before it so the parts load in a page; dicom.js then takes `window._2`.
window.require = window.require || function require() {
  throw new Error('require is not available in the page');
};
