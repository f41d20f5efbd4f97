// A message's end, seen from both sides. Bob (the recipient) opens Dr Ada's
// message, sees its countdown and downloads its attachment. Dr Ada then sees,
// in her Sent list, that it was read, and on the message when Bob opened it
// and what he downloaded; she keeps it 30 days longer, then deletes it for
// everyone. Bob, following his old link, reads that it was deleted and when.
// Every page is checked with axe at phone and desktop width.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const portal = t.env('PORTAL');
  const message = `${portal}/m/${t.env('MESSAGE')}`;
  // The message's own countdown (the folder list beside it has one per line).
  const countdown = async (text) => {
    const shown = await page.locator('.reading-pane [data-countdown]').last().innerText();
    check(shown === text, `the countdown says "${shown}", not "${text}"`);
  };
  const signIn = async (email, password, next) => {
    await page.goto(`${portal}/signin?next=${encodeURIComponent(next)}`);
    await page.getByLabel('Email address').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await t.secondStep();
  };

  // Bob reads it and downloads the report.
  await signIn('bob@smiles.example', t.env('BOB_PASSWORD'), '/inbox');
  await t.heading('Inbox');
  await t.see('Deletes in 30 days');
  await page.goto(message);
  await t.heading(t.env('SUBJECT'));
  await countdown('Deletes in 30 days');
  check((await page.getByRole('button', { name: /days longer/ }).count()) === 0, 'a recipient cannot move the date');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /Download/ }).first().click(),
  ]);
  check((await download.failure()) === null, 'the attachment downloads');
  await page.locator('details.delete summary').click();
  await t.see('This removes the message from your inbox only');
  await t.a11y('message, recipient, delete open');
  await t.account('Sign out');

  // Dr Ada sees the receipts.
  await signIn('ada@smiles.example', t.env('ADA_PASSWORD'), '/sent');
  await t.heading('Sent');
  const mark = page.locator('[data-read-mark]').first();
  check((await mark.getAttribute('title')) === 'Read', `the Sent list marks it read: ${await mark.getAttribute('title')}`);
  await page.goto(message);
  await t.heading(t.env('SUBJECT'));
  const receipts = page.locator('section.recipients');
  await receipts.getByText('Opened').first().waitFor({ state: 'visible' });
  await receipts.getByText(/Downloaded report-.*\.pdf/).first().waitFor({ state: 'visible' });
  // The screenshot at desktop width (on a phone the folder bar covers part of a full-page shot).
  const size = page.viewportSize();
  await page.setViewportSize({ width: 1280, height: 900 });
  await t.shot('lifecycle-receipts');
  await page.setViewportSize(size);

  // Keeps it longer, then deletes it for everyone.
  await countdown('Deletes in 30 days');
  await page.getByRole('button', { name: 'Keep 30 days longer' }).click();
  await t.heading(t.env('SUBJECT'));
  await countdown('Deletes in 60 days');
  await page.getByText('Delete for everyone', { exact: true }).click();
  await t.see('Deleting will delete this message for all users and on both ends');
  await t.a11y('message, sender, delete open');
  await page.getByRole('button', { name: 'Delete this message for everyone' }).click();
  await t.heading('Sent');
  check((await page.locator(`a[href="/m/${t.env('MESSAGE')}"]`).count()) === 0, 'gone from the Sent list');
  await t.account('Sign out');

  // Bob's old link says what happened.
  await signIn('bob@smiles.example', t.env('BOB_PASSWORD'), `/m/${t.env('MESSAGE')}`);
  await t.heading('This message was deleted');
  await t.see('This message was deleted on');
  await t.shot('lifecycle-deleted');
});
