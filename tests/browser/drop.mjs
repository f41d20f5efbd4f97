// Secure Drop in the portal: Dr Ada opens "Secure Drop" from the menu, drops
// two files (each uploads at once and is sealed), picks Pat from the address
// book by name, adds a sealed note and sends. She lands on the sent message,
// which carries both files; each downloads byte-identical, and Pat is told.
// A new address is asked about first (how she knows them), keeping the files.
// Every state is checked with axe at phone and desktop width.
import { createHash, randomBytes } from 'node:crypto';
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const files = [
    { name: 'bitewing.png', mimeType: 'image/png', buffer: randomBytes(900 * 1024 + 17) },
    { name: 'crown.stl', mimeType: 'model/stl', buffer: randomBytes(300 * 1024 + 5) },
  ];
  const sha = (b) => createHash('sha256').update(b).digest('hex');

  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.heading('Inbox');
  await page.getByRole('link', { name: 'Secure Drop' }).click();
  await t.heading('Secure Drop');

  // A new address first: the page asks how she knows them, keeping the files.
  await page.getByLabel('Choose files to attach').setInputFiles(files[1]);
  await t.see('All files are uploaded and sealed.');
  await page.getByRole('combobox', { name: 'Send to' }).fill('newdoc@else.example');
  await page.getByRole('button', { name: 'Send securely' }).click();
  await t.see('newdoc@else.example is new');
  await t.a11y('secure drop, the role question for a new address');
  check((await page.locator('select[name="role:newdoc@else.example"]').count()) === 1, 'the new address is asked about');
  check((await page.locator('input[type="hidden"][name="upload"]').count()) === 1, 'the uploaded file is kept');

  // Start again: two files to Pat, picked by name.
  await page.getByRole('link', { name: 'Secure Drop' }).click();
  await t.heading('Secure Drop');
  await page.getByLabel('Choose files to attach').setInputFiles(files);
  await t.see('All files are uploaded and sealed.');
  check((await page.locator('input[type="hidden"][name="upload"]').count()) === 2, 'two sealed uploads in the form');
  await t.a11y('secure drop, two files sealed');
  const to = page.getByRole('combobox', { name: 'Send to' });
  await to.focus();
  await page.keyboard.type('Pat E');
  const listbox = page.getByRole('listbox');
  await listbox.waitFor({ state: 'visible' });
  await t.a11y('secure drop, suggestions open');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await listbox.waitFor({ state: 'hidden' });
  check((await to.inputValue()).trim().replace(/,$/, '').trim() === 'pat@example.org', `picked: "${await to.inputValue()}"`);
  await page.getByLabel('Note (optional)').fill('Your bitewings and the crown model.');
  await t.shot('secure-drop');
  await page.getByRole('button', { name: 'Send securely' }).click();

  await page.waitForURL(/\/m\/[^/?]+$/, { timeout: 30000 });
  await t.see('Your bitewings and the crown model.');
  await t.a11y('the dropped message');
  // The files are attached in the order their uploads finished.
  const got = [];
  for (const index of [0, 1]) {
    const response = await page.request.get(new URL(`${new URL(page.url()).pathname}/a/${index}`, page.url()).href);
    check(response.status() === 200, `download ${index} answered ${response.status()}`);
    got.push(sha(await response.body()));
  }
  for (const file of files) {
    check(got.includes(sha(file.buffer)), `${file.name} differs from the file dropped`);
  }
  const told = await t.ask('told');
  check(told === 'yes', `Pat was not told: ${told}`);
});
