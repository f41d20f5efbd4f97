// Dr Ada attaches a file on "Upload files": it uploads at once with a progress
// bar, the connection is cut mid-way (the second PATCH is held, then aborted:
// the form can't be sent meanwhile), the upload resumes from what the server
// sealed (HEAD, then PATCH from there) and ends "Uploaded and sealed"; the
// form then posts the sealed upload, and the file read back is byte-identical.
// A type not accepted is refused with the server's words.
import { createHash, randomBytes } from 'node:crypto';
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const file = randomBytes(6 * 1024 * 1024 + 12345);
  const sha = createHash('sha256').update(file).digest('hex');

  await page.goto(`${t.env('PORTAL')}/signin?next=/uploads/new`);
  await t.heading('Sign in');
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.heading('Upload files');
  const submit = page.getByRole('button', { name: 'Upload', exact: true });

  // Count what the client sends; hold the second PATCH, then cut it.
  const seen = { head: 0, patch: 0 };
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let cutDone;
  const cut = new Promise((resolve) => { cutDone = resolve; });
  page.on('request', (r) => {
    if (r.url().includes('/uploads/') && r.method() === 'HEAD') seen.head += 1;
  });
  const tusUrl = /\/uploads\/[0-9a-f]{32}$/;
  await page.route(tusUrl, async (route) => {
    if (route.request().method() !== 'PATCH') return route.continue();
    seen.patch += 1;
    if (seen.patch === 2) {
      await held;
      await route.abort('connectionreset');
      cutDone();
      return;
    }
    return route.continue();
  });

  await page.getByLabel('Choose files to attach').setInputFiles({
    name: 'x-ray-scan.pdf', mimeType: 'application/pdf', buffer: file,
  });
  const item = page.locator('[data-upload-list] li').first();
  await item.getByText('x-ray-scan.pdf').waitFor();
  const bar = item.getByRole('progressbar', { name: 'x-ray-scan.pdf' });
  await bar.waitFor();
  // The first 4 MiB went; the rest is held: the form waits.
  await page.waitForFunction(() => document.querySelector('[data-upload-list] progress').value > 0);
  check(await submit.isDisabled(), 'the form can be sent while a file is uploading');
  await t.see('Waiting for 1 file to finish uploading.');
  await t.a11y('an upload in progress');
  release();
  await cut;

  await item.getByText('Uploaded and sealed.').waitFor({ timeout: 30000 });
  check(seen.head >= 1, `the client did not ask where the upload stood (HEAD ${seen.head})`);
  check(seen.patch >= 3, `the upload did not resume (PATCH ${seen.patch})`);
  check(await submit.isEnabled(), 'the form is still held after the upload was sealed');
  const id = await page.locator('input[type="hidden"][name="upload"]').inputValue();
  check(/^[0-9a-f]{32}$/.test(id), `no sealed upload in the form: ${id}`);
  await t.see('All files are uploaded and sealed.');
  await t.a11y('an upload sealed');
  await t.shot('upload-sealed');

  // What the server sealed is the file, byte for byte (checked by the test too).
  const answer = await t.ask(`check ${id} ${sha}`);
  check(answer === 'identical', `the server's copy is ${answer}`);

  // A type not accepted: refused in the server's words, the form not held.
  t.expectFailure('/uploads');
  await page.getByLabel('Choose files to attach').setInputFiles({
    name: 'setup.exe', mimeType: 'application/octet-stream', buffer: Buffer.from('MZ'),
  });
  await t.see('files of type .exe are not accepted');
  check(await submit.isEnabled(), 'a refused file holds the form');
  await t.a11y('a file type refused');

  await page.unroute(tusUrl);
  await submit.click();
  await t.heading('Upload files');
  await t.see('Ready to send:');
  const link = page.getByRole('link', { name: 'x-ray-scan.pdf' });
  const response = await page.request.get(new URL(await link.getAttribute('href'), page.url()).href);
  check(response.status() === 200, `download answered ${response.status()}`);
  const back = createHash('sha256').update(await response.body()).digest('hex');
  check(back === sha, 'the file read back differs from the file sent');
});
