// The TIFF viewer: browsers don't draw TIFF, so UTIF.js decodes the first
// page onto a canvas.
document.addEventListener('DOMContentLoaded', async () => {
  'use strict';
  const { viewer, bytes, panZoom } = window.SealpostViewer;
  const v = viewer();
  const canvas = v.stage.querySelector('[data-canvas]');
  try {
    const buffer = await bytes(v.src);
    let rgba;
    let page;
    try {
      const pages = window.UTIF.decode(buffer);
      page = pages.find((p) => p.t256 && p.t257) || pages[0];
      window.UTIF.decodeImage(buffer, page);
      rgba = window.UTIF.toRGBA8(page);
    } catch {
      throw new Error('This image could not be shown: the file is damaged or is not a TIFF image this viewer reads.');
    }
    if (!page || !page.width || !page.height || rgba.length < page.width * page.height * 4) {
      throw new Error('This image could not be shown: the file is damaged or is not a TIFF image this viewer reads.');
    }
    canvas.width = page.width;
    canvas.height = page.height;
    canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer, 0, page.width * page.height * 4), page.width, page.height), 0, 0);
    v.done();
    panZoom(v.stage, canvas);
  } catch (e) {
    v.fail(e.message);
  }
});
