// A patient who forgot their password asks for a link, sets a new password
// from the email, and signs in with it afterwards; the old one no longer works.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const email = t.env('EMAIL');
  const fresh = 'Brand-New-Pass-77';
  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await t.heading('Forgot your password?');
  await page.getByLabel('Email address').fill(email);
  await t.shot('forgot');
  await page.getByRole('button', { name: 'Send me a link' }).click();
  await t.heading('Check your email');

  await page.goto(await t.ask('reset_link'));
  await t.heading('Choose your password');
  await page.getByLabel('New password').fill(fresh);
  await page.getByLabel('Type the same password again').fill(fresh);
  await page.getByRole('button', { name: 'Save password and continue' }).click();
  await t.heading('Inbox');
  await t.see(t.env('CANARY'));

  await page.getByRole('button', { name: 'Sign out' }).click();
  await t.heading('Sign in');
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.see('Wrong email address or password.');
  await page.getByLabel('Password').fill(fresh);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.heading('Inbox');
  check(page.url().endsWith('/inbox'), `ended on ${page.url()}`);
});
