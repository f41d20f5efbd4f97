// The DICOM viewer: daikon parses the file (and the message's other DICOM
// files of the same series, for a CBCT slice scroll); we draw each slice on a
// canvas through the window/level the sliders set. Monochrome images only.
document.addEventListener('DOMContentLoaded', async () => {
  'use strict';
  const { viewer, bytes, panZoom } = window.SealpostViewer;
  const v = viewer();
  const canvas = v.stage.querySelector('[data-canvas]');
  const width = v.root.querySelector('[data-dicom="width"]');
  const center = v.root.querySelector('[data-dicom="center"]');
  const slice = v.root.querySelector('[data-dicom="slice"]');
  const sliceLabel = v.root.querySelector('[data-slice-label]');
  const MAX_SERIES_BYTES = 300 * 1024 * 1024;
  const unreadable = 'This DICOM file could not be shown: it is damaged, holds no image, or uses an encoding this viewer does not read.';
  // daikon's bundle leaves the library in `_2` (see daikon-shim.js).
  const daikon = window.daikon || window._2;

  function parse(buffer) {
    const image = daikon.Series.parseImage(new DataView(buffer));
    if (!image || !image.hasPixelData() || !image.getCols() || !image.getRows()) return null;
    return image;
  }

  try {
    const main = parse(await bytes(v.src));
    if (!main) throw new Error(unreadable);
    const images = [main];
    // The other DICOM files of the message that belong to the same series.
    const others = (v.root.dataset.series || '').split(' ').filter((u) => u && u !== v.src);
    let total = 0;
    for (const url of others) {
      let buffer;
      try { buffer = await bytes(url); } catch { continue; }
      total += buffer.byteLength;
      if (total > MAX_SERIES_BYTES) break;
      let image = null;
      try { image = parse(buffer); } catch { image = null; }
      if (image && image.getSeriesId() === main.getSeriesId()) images.push(image);
    }
    images.sort((a, b) => (a.getImageNumber() || 0) - (b.getImageNumber() || 0));
    const slices = [];
    for (const image of images) {
      const frames = image.getNumberOfFrames() || 1;
      for (let f = 0; f < frames; f += 1) slices.push({ image, frame: f });
    }
    const cache = new Map();
    const pixels = (n) => {
      if (!cache.has(n)) {
        const { image, frame } = slices[n];
        if (image.getDataType && image.getPhotometricInterpretation && /^RGB|^YBR/.test(image.getPhotometricInterpretation() || '')) {
          throw new Error('This DICOM file holds a colour image, which this viewer does not show.');
        }
        const data = image.getInterpretedData(false, true, frame);
        if (!data || !data.data || data.data.length < data.numCols * data.numRows) throw new Error(unreadable);
        cache.set(n, data);
        if (cache.size > 64) cache.delete(cache.keys().next().value);
      }
      return cache.get(n);
    };
    let current = slices.indexOf(slices.find((s) => s.image === main));
    const first = pixels(current);
    const lo = Math.floor(first.min);
    const hi = Math.ceil(first.max);
    const span = Math.max(1, hi - lo);
    width.min = '1'; width.max = String(span * 2);
    center.min = String(lo - span); center.max = String(hi + span);
    const ww = main.getWindowWidth();
    const wc = main.getWindowCenter();
    width.value = String(ww && ww > 0 ? ww : span);
    center.value = String(wc !== null && wc !== undefined && !Number.isNaN(wc) ? wc : (lo + hi) / 2);

    const draw = () => {
      const p = pixels(current);
      canvas.width = p.numCols;
      canvas.height = p.numRows;
      const context = canvas.getContext('2d');
      const out = context.createImageData(p.numCols, p.numRows);
      const w = Number(width.value);
      const low = Number(center.value) - w / 2;
      for (let i = 0, o = 0; i < p.numCols * p.numRows; i += 1, o += 4) {
        const g = Math.max(0, Math.min(255, ((p.data[i] - low) / w) * 255));
        out.data[o] = g; out.data[o + 1] = g; out.data[o + 2] = g; out.data[o + 3] = 255;
      }
      context.putImageData(out, 0, 0);
      slice.value = String(current + 1);
      sliceLabel.textContent = `${current + 1} of ${slices.length}`;
    };
    if (slices.length > 1) {
      slice.max = String(slices.length);
      v.root.querySelector('[data-slices]').hidden = false;
      slice.addEventListener('input', () => { current = Number(slice.value) - 1; draw(); });
      v.stage.tabIndex = 0;
      v.stage.setAttribute('role', 'group');
      v.stage.setAttribute('aria-label', 'Slices: arrow keys move through them');
      v.stage.addEventListener('keydown', (e) => {
        if (e.key === 'ArrowUp' || e.key === 'ArrowRight') current = Math.min(slices.length - 1, current + 1);
        else if (e.key === 'ArrowDown' || e.key === 'ArrowLeft') current = Math.max(0, current - 1);
        else return;
        e.preventDefault();
        draw();
      });
    }
    width.addEventListener('input', draw);
    center.addEventListener('input', draw);
    draw();
    v.done();
    v.root.dataset.slices = String(slices.length);
    panZoom(v.stage, canvas);
  } catch (e) {
    v.fail(e && e.message && e.message.startsWith('This ') ? e.message : unreadable);
  }
});
