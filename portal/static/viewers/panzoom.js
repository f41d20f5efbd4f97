// Shared by the 2D viewers (image, TIFF, DICOM): drag to move, wheel or
// pinch to zoom, the toolbar's buttons, and the page's status and error lines.
// Exposes window.SealpostViewer.
(function () {
  'use strict';

  /** The viewer section of the page, with helpers for its status lines. */
  function viewer() {
    const root = document.querySelector('[data-viewer]');
    const status = root.querySelector('[data-status]');
    const error = root.querySelector('[data-error]');
    return {
      root,
      src: root.dataset.src,
      stage: root.querySelector('[data-stage]'),
      done() { status.textContent = ''; root.dataset.state = 'shown'; },
      fail(message) {
        status.textContent = '';
        error.textContent = `${message} Use the Download button to open it in another program.`;
        error.hidden = false;
        root.dataset.state = 'failed';
        root.querySelector('[data-stage]').hidden = true;
        root.querySelectorAll('.viewer-tools button, .viewer-tools input').forEach((b) => { b.disabled = true; });
      },
    };
  }

  /** Fetches the attachment's bytes; throws a sentence a person can read. */
  async function bytes(url) {
    const response = await fetch(url, { credentials: 'same-origin' });
    if (!response.ok) throw new Error('The file could not be loaded.');
    return response.arrayBuffer();
  }

  /** Moves and scales `target` inside `stage` with a CSS transform. */
  function panZoom(stage, target) {
    let scale = 1;
    let x = 0;
    let y = 0;
    const pointers = new Map();
    let pinch = null;
    const apply = () => { target.style.transform = `translate(${x}px, ${y}px) scale(${scale})`; };
    const zoomAt = (factor, cx, cy) => {
      const next = Math.min(40, Math.max(0.1, scale * factor));
      const rect = stage.getBoundingClientRect();
      const px = cx - rect.left - rect.width / 2;
      const py = cy - rect.top - rect.height / 2;
      x = px - ((px - x) * next) / scale;
      y = py - ((py - y) * next) / scale;
      scale = next;
      apply();
    };
    const center = () => {
      const rect = stage.getBoundingClientRect();
      return [rect.left + rect.width / 2, rect.top + rect.height / 2];
    };
    stage.addEventListener('wheel', (e) => {
      e.preventDefault();
      zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX, e.clientY);
    }, { passive: false });
    stage.addEventListener('pointerdown', (e) => {
      stage.setPointerCapture(e.pointerId);
      pointers.set(e.pointerId, [e.clientX, e.clientY]);
    });
    stage.addEventListener('pointermove', (e) => {
      const last = pointers.get(e.pointerId);
      if (!last) return;
      pointers.set(e.pointerId, [e.clientX, e.clientY]);
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
        if (pinch) zoomAt(distance / pinch, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
        pinch = distance;
      } else if (pointers.size === 1) {
        x += e.clientX - last[0];
        y += e.clientY - last[1];
        apply();
      }
    });
    const up = (e) => { pointers.delete(e.pointerId); pinch = null; };
    stage.addEventListener('pointerup', up);
    stage.addEventListener('pointercancel', up);
    document.querySelectorAll('[data-zoom]').forEach((button) => {
      button.addEventListener('click', () => {
        const [cx, cy] = center();
        if (button.dataset.zoom === 'in') zoomAt(1.5, cx, cy);
        else if (button.dataset.zoom === 'out') zoomAt(1 / 1.5, cx, cy);
        else { scale = 1; x = 0; y = 0; apply(); }
      });
    });
    apply();
  }

  window.SealpostViewer = { viewer, bytes, panZoom };
})();
