// The image viewer: JPEG, PNG, GIF and BMP, drawn by the browser from the
// attachment's bytes (served as an image only when they are one).
document.addEventListener('DOMContentLoaded', () => {
  'use strict';
  const { viewer, panZoom } = window.SealpostViewer;
  const v = viewer();
  const img = v.stage.querySelector('[data-image]');
  img.addEventListener('load', () => {
    v.done();
    panZoom(v.stage, img);
  });
  img.addEventListener('error', () => {
    v.fail('This image could not be shown: the file is damaged or is not a JPEG, PNG, GIF or BMP image.');
  });
  img.src = v.src;
});
