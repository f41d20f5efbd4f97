// A new patient opens the invitation link, registers, sets a password from the
// emailed link, sets up two-step verification with a code texted to the phone
// they registered, reads the message, downloads the attachment, finds it in the
// inbox and signs out.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const canary = t.env('CANARY');
  const hidden = async (when) => {
    const html = await page.content();
    check(!html.includes(canary) && !html.includes(t.env('SUBJECT')), `the message shows ${when}`);
  };

  await page.goto(t.env('INVITE'));
  await t.heading('Register to read your secure message');
  await hidden('before registration');
  await t.shot('registration');
  await page.getByLabel('Full name').fill('Pat Example');
  await page.getByLabel('Phone number').fill('+12015550199');
  await page.getByRole('button', { name: 'Register' }).click();
  await t.heading('Check your email');

  await page.goto(await t.ask('set_password_link'));
  await t.heading('Choose your password');
  await t.shot('password');
  await page.getByLabel('New password').fill(t.env('PASSWORD'));
  await page.getByLabel('Type the same password again').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Save password and continue' }).click();

  // Two-step set-up: the phone from registration is filled in; a code goes to it.
  await t.heading('Two-step verification');
  await t.see('Choose how you want to get it.');
  const phone = page.getByLabel('Your phone number');
  check((await phone.inputValue()) === '+12015550199', `phone field: ${await phone.inputValue()}`);
  await t.shot('two-step-setup');
  await hidden('before the second step');
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await t.see('We sent a text message to your phone ending in');
  await t.a11y('two-step setup after the code was texted');
  await page.getByLabel('Code', { exact: true }).fill(await t.ask('code'));
  await page.getByRole('button', { name: 'Verify and continue' }).click();

  await t.heading('Secure message from Dr Ada Lovelace');
  await t.see(`your results: ${canary}`);
  await t.heading(t.env('SUBJECT'));
  await t.shot('message');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /Download/ }).click(),
  ]);
  const bytes = readFileSync(await download.path());
  const digest = createHash('sha256').update(bytes).digest('hex');
  check(digest === t.env('ATTACHMENT_SHA256'), `downloaded ${bytes.length} bytes that differ from the attachment`);
  check(download.suggestedFilename() === t.env('ATTACHMENT_NAME'), `file name ${download.suggestedFilename()}`);

  await page.getByRole('link', { name: 'Inbox' }).click();
  await t.heading('Inbox');
  await t.see(t.env('SUBJECT'));
  await t.shot('inbox');

  await t.account('Sign out');
  await t.heading('Sign in');
  await page.goto(new URL('/inbox', page.url()).href);
  await t.heading('Sign in');
  await hidden('after signing out');
  // A mistyped or stale link: a clear error page (checked for accessibility too).
  await page.goto(new URL('/password/not-a-real-link', page.url()).href);
  await t.heading('Link not valid');
});
