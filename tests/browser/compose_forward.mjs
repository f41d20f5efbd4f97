// A doctor forwards a secure message with its attachment to two recipients,
// one of them new, and attaches one more file (uploaded at once, sealed); the
// form asks how she knows the new address, keeping everything, and sends. The
// new recipient registers from the invitation and reads the message and both
// attachments.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const portal = t.env('PORTAL');
  const canary = t.env('CANARY');
  const family = t.env('FAMILY');
  await page.goto(`${portal}/signin`);
  await t.heading('Sign in');
  await page.getByLabel('Email address').fill('ada@smiles.example');
  await page.getByLabel('Password').fill(t.env('ADA_PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');

  await page.goto(`${portal}/compose?forward=${t.env('MESSAGE')}`);
  await t.heading('Forward');
  await t.see(t.env('ATTACHMENT_NAME'));
  await page.getByLabel('To', { exact: true }).fill(`${family}, pat@example.org`);
  await page.getByLabel('Message', { exact: true }).fill(`Please read this together. ${canary}`);
  await page.getByLabel('Choose files to attach').setInputFiles({
    name: 'care-plan.pdf', mimeType: 'application/pdf', buffer: Buffer.from(`%PDF-1.4 care plan ${canary}`),
  });
  await page.locator('[data-sealed]').first().waitFor();
  await page.getByRole('button', { name: 'Send securely' }).click();

  await t.see('How do you know these new recipients?');
  await t.a11y('compose asking how the sender knows a new address');
  await t.shot('compose-roles');
  await t.see('care-plan.pdf');
  check((await page.getByLabel('Message', { exact: true }).inputValue()).includes(canary), 'the text is kept');
  await page.getByLabel(family, { exact: true }).selectOption('patient');
  await page.getByRole('button', { name: 'Send securely' }).click();
  await t.heading('Secure message from Dr Ada Lovelace');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await t.heading('Sign in');

  await page.goto(await t.ask('invite'));
  await t.heading('Register to read your secure message');
  await page.getByLabel('Full name').fill('Kim Family');
  await page.getByLabel('Phone number').fill(t.env('FAMILY_PHONE'));
  await page.getByRole('button', { name: 'Register' }).click();
  await t.heading('Check your email');
  await page.goto(await t.ask('set_password_link'));
  await t.heading('Choose your password');
  await page.getByLabel('New password').fill('Family-Pass-31');
  await page.getByLabel('Type the same password again').fill('Family-Pass-31');
  await page.getByRole('button', { name: 'Save password and continue' }).click();
  await t.heading('Two-step verification');
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await page.getByLabel('Code', { exact: true }).fill(await t.ask('code'));
  await page.getByRole('button', { name: 'Verify and continue' }).click();

  await t.heading('Secure message from Dr Ada Lovelace');
  await t.see(`Please read this together. ${canary}`);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: `Download ${t.env('ATTACHMENT_NAME')}` }).click(),
  ]);
  const digest = createHash('sha256').update(readFileSync(await download.path())).digest('hex');
  check(digest === t.env('ATTACHMENT_SHA256'), 'the forwarded attachment differs');
  await t.see('care-plan.pdf');
});
