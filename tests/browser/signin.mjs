// A registered patient signs in with a password: a wrong one is refused with
// a clear message, the right one opens the inbox.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  await page.goto(`${t.env('PORTAL')}/signin`);
  await t.heading('Sign in');
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill('Not-The-Password-1');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.see('Wrong email address or password.');
  check(!page.url().includes('/inbox'), 'a wrong password got in');

  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.heading('Inbox');
  await t.see(t.env('CANARY'));
});
