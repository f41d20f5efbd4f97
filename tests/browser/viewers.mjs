// Dr Ada reads a message with scans attached: "Download all" gives a zip whose
// every file (unzipped by Info-ZIP) has the SHA-256 the test sent; the PNG's
// thumbnail and viewer show it and zoom; the STL viewer draws the crown (binary
// and ASCII: sampled pixels differ from the background, and change when it is
// rotated); the TIFF is decoded; the DICOM series scrolls and the window
// changes the pixels; a damaged PNG and STL say so next to the download.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const message = t.env('MESSAGE');
  const expected = JSON.parse(t.env('FILES')); // [[name in zip, sha256], ...]

  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${t.env('PORTAL')}/signin?next=${message}`);
  await t.heading('Sign in');
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.heading('Your scans');

  // The thumbnail of the PNG is drawn.
  const thumb = page.locator(`img.thumb[src="${message}/a/0/thumb"]`);
  await thumb.waitFor();
  await page.waitForFunction((src) => {
    const img = document.querySelector(`img.thumb[src="${src}"]`);
    return img && img.complete && img.naturalWidth === 64;
  }, `${message}/a/0/thumb`);

  // Download all: every file byte-identical.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download all' }).click(),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'sealpost-zip-'));
  const zip = join(dir, 'all.zip');
  await download.saveAs(zip);
  execFileSync('unzip', ['-q', zip, '-d', join(dir, 'out')]);
  for (const [name, sha] of expected) {
    const got = createHash('sha256').update(readFileSync(join(dir, 'out', name))).digest('hex');
    check(got === sha, `${name} in the zip has SHA-256 ${got}, not ${sha}`);
  }
  const listing = execFileSync('unzip', ['-Z1', zip]).toString().trim().split('\n');
  check(listing.length === expected.length, `the zip lists ${listing.length} files: ${listing}`);

  const shown = async (label) => {
    await page.waitForSelector('[data-viewer][data-state]');
    const state = await page.getAttribute('[data-viewer]', 'data-state');
    const error = await page.locator('[data-error]').innerText();
    check(state === 'shown', `${label}: the viewer says ${state}: ${error}`);
  };

  // The image viewer: the PNG, zoomed with the toolbar.
  await page.getByRole('link', { name: 'View image radiograph.png' }).click();
  await t.heading('radiograph.png');
  await shown('PNG');
  check(await page.$eval('[data-image]', (img) => img.naturalWidth) === 64, 'the PNG is drawn 64 px wide');
  await page.getByRole('button', { name: 'Zoom in' }).click();
  const transform = await page.$eval('[data-image]', (img) => img.style.transform);
  check(transform.includes('scale(1.5)'), `zoom in scales the image: ${transform}`);
  await t.shot('viewer-image');

  // The STL viewer: pixels that aren't the background, and that move when rotated.
  const sample = () => page.$eval('[data-canvas]', (canvas) => {
    const copy = document.createElement('canvas');
    copy.width = canvas.width; copy.height = canvas.height;
    const context = copy.getContext('2d');
    context.drawImage(canvas, 0, 0);
    const { data } = context.getImageData(0, 0, copy.width, copy.height);
    let model = 0; let hash = 0;
    for (let i = 0; i < data.length; i += 4) {
      const background = Math.abs(data[i] - 0xf4) + Math.abs(data[i + 1] - 0xf6) + Math.abs(data[i + 2] - 0xf8) < 6;
      if (!background) { model += 1; hash = (hash * 31 + data[i] + data[i + 1] * 7 + i) % 1000000007; }
    }
    return { share: model / (data.length / 4), hash };
  });
  for (const [index, name] of [[1, 'crown.stl'], [2, 'crown (2).stl']]) {
    await page.goto(`${t.env('PORTAL')}${message}/a/${index}/view`);
    await t.heading('crown.stl');
    await shown(name);
    await page.waitForFunction(() => document.querySelector('[data-canvas]').width > 0);
    const before = await sample();
    check(before.share > 0.02, `${name}: the model covers ${(before.share * 100).toFixed(2)}% of the canvas`);
    const box = await page.locator('[data-stage]').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2 + 40, { steps: 5 });
    await page.mouse.up();
    const after = await sample();
    check(after.share > 0.02 && after.hash !== before.hash, `${name}: rotating changes the picture`);
    if (index === 1) await t.shot('viewer-stl');
  }

  // TIFF, decoded in the page.
  await page.goto(`${t.env('PORTAL')}${message}/a/3/view`);
  await t.heading('panoramic.tiff');
  await shown('TIFF');
  check(await page.$eval('[data-canvas]', (c) => `${c.width}x${c.height}`) === '48x32', 'the TIFF is 48x32');

  // DICOM: the series of three, window/level and slice scroll.
  await page.goto(`${t.env('PORTAL')}${message}/a/5/view`);
  await t.heading('cbct-2.dcm');
  await shown('DICOM');
  await t.see('2 of 3');
  const pixel = (x, y) => page.$eval('[data-canvas]', (c, [px, py]) => c.getContext('2d').getImageData(px, py, 1, 1).data[0], [x, y]);
  const disc = await pixel(32, 32);
  const ramp = await pixel(1, 1);
  check(disc > ramp + 50, `the disc (${disc}) is brighter than the background (${ramp})`);
  await page.locator('[data-dicom="width"]').fill('200');
  await page.locator('[data-dicom="center"]').fill('300');
  check(await pixel(1, 1) !== ramp, 'a narrower window changes the picture');
  await page.locator('[data-stage]').focus();
  await page.keyboard.press('ArrowUp');
  await t.see('3 of 3');
  await t.shot('viewer-dicom');

  // Damaged files: a clear message and the download button.
  for (const [index, name, words] of [[7, 'broken.png', 'This image could not be shown'], [8, 'broken.stl', 'This 3D model could not be shown']]) {
    await page.goto(`${t.env('PORTAL')}${message}/a/${index}/view`);
    await t.heading(name);
    await page.waitForSelector('[data-viewer][data-state="failed"]');
    await t.see(words);
    check(await page.getByRole('link', { name: `Download ${name}` }).isVisible(), `${name}: the download button stays`);
    await t.a11y(`${name} could not be shown`);
  }
});
