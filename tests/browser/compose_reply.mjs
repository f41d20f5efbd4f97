// A patient answers in the portal: Reply all fills in the sender and the Cc;
// the notification note warns as a date of birth is typed and stops once it is
// gone; the reply is sent and shown. Then, with a free account, a new message
// to someone outside the practice is refused with the page that explains the
// upgrade, and the same message to the practice's doctor goes.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const portal = t.env('PORTAL');
  const canary = t.env('CANARY');
  await page.goto(`${portal}/signin`);
  await t.heading('Sign in');
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');

  await page.goto(`${portal}/compose?reply_all=${t.env('MESSAGE')}`);
  await t.heading('Reply to all');
  const to = await page.getByLabel('To', { exact: true }).inputValue();
  const cc = await page.getByLabel('Cc', { exact: true }).inputValue();
  check(to === 'ada@smiles.example', `To: ${to}`);
  check(cc === 'bob@smiles.example', `Cc: ${cc}`);
  check((await page.getByLabel('Subject').inputValue()).startsWith('Re: '), 'a Re: subject');

  const note = page.getByLabel('Note (optional)');
  const warning = page.locator('#note-warning');
  await note.pressSequentially('Born on 03/14/1985');
  await t.see('looks like it holds health information');
  check((await warning.innerText()).includes('a date of birth'), await warning.innerText());
  await t.a11y('compose with the note warning');
  await t.shot('compose-note-warning');
  await note.fill('');
  await note.pressSequentially('Pat answered');
  check(await warning.isHidden(), 'the warning stays after the date is gone');

  await page.getByLabel('Message', { exact: true }).fill(`Thank you. My answer: ${canary}`);
  await page.getByRole('button', { name: 'Send securely' }).click();
  await t.heading('Secure message from Pat Example');
  await t.see(`My answer: ${canary}`);

  await page.goto(`${portal}/compose`);
  await t.heading('New secure message');
  await t.see('doctors and staff of Smiles Dental');
  await t.shot('compose');
  await page.getByLabel('To', { exact: true }).fill('friend@elsewhere.example');
  await page.getByLabel('Subject').fill('A question');
  await page.getByLabel('Message', { exact: true }).fill('Is Tuesday fine?');
  await page.getByRole('button', { name: 'Send securely' }).click();
  await t.heading('Upgrade to write to anyone');
  await t.see("Your free account can't write to friend@elsewhere.example");
  await t.shot('compose-upgrade');
  check((await page.getByLabel('Message', { exact: true }).inputValue()) === 'Is Tuesday fine?', 'the message is kept');

  await page.getByLabel('To', { exact: true }).fill('ada@smiles.example');
  await page.getByRole('button', { name: 'Send securely' }).click();
  await t.heading('Secure message from Pat Example');
  await t.see('Is Tuesday fine?');
});
