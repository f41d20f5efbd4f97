// A practice's User Manager (Dr Ada) deactivates Bob, who left: on Bob's page
// under Users she ticks the confirmation box and presses Deactivate; the page
// then says he is deactivated (no buttons left for him), the list shows it, and
// Bob's password no longer signs him in.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const signIn = async (email, password) => {
    await page.goto(`${t.env('PORTAL')}/signin`);
    await page.getByLabel('Email address').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  };
  const row = (text) => page.getByRole('row').filter({ hasText: text });
  const status = async (text) => (await row(text).getByRole('cell').nth(2).innerText()).trim();

  await signIn('ada@smiles.example', t.env('MANAGER_PASSWORD'));
  await t.secondStep();
  await t.heading('Inbox');
  await t.account('Users');
  await t.heading('Manage users');
  await row('bob@smiles.example').getByRole('link').click();
  await t.heading('Bob Staff');
  await t.see('The messages they sent stay for their recipients.');
  // The box must be ticked first: the browser holds the form back until it is.
  await page.getByRole('button', { name: 'Deactivate', exact: true }).click();
  check(!(await page.getByText('Deactivated.').count()), 'deactivated without the box ticked');
  await page.getByLabel('Yes, Bob Staff has left: deactivate this account').check();
  await page.getByRole('button', { name: 'Deactivate', exact: true }).click();
  await t.see('Deactivated. They are signed out everywhere and can no longer sign in.');
  await t.a11y('user page after deactivating');
  check(!(await page.getByRole('button').filter({ hasText: 'Deactivate' }).count()), 'a Deactivate button is left');
  await page.getByRole('link', { name: 'All users' }).click();
  await t.heading('Manage users');
  check((await status('bob@smiles.example')) === 'Deactivated', `Bob: ${await status('bob@smiles.example')}`);
  await t.account('Sign out');
  await t.heading('Sign in');

  await signIn('bob@smiles.example', t.env('STAFF_PASSWORD'));
  await page.waitForLoadState();
  await t.heading('Sign in');
  check(!page.url().includes('/inbox'), 'Bob signed in after being deactivated');
});
