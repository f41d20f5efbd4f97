// A User Manager buys SecureMail for one of the practice's users: from Manage
// users, the user's page, "Purchase SecureMail for this user", a test card;
// the plan shows among the plans the manager pays for, with the user's
// address. Every page is checked with axe at phone and desktop width.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByLabel('Email address').fill('um@smiles.example');
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');

  await page.goto(`${t.env('PORTAL')}/practice/users`);
  await t.heading('Manage users');
  await page.getByRole('link', { name: 'Sam Staff' }).click();
  await t.heading('Sam Staff');
  await page.getByRole('link', { name: 'Purchase SecureMail for this user' }).click();
  await t.heading('Buy SecureMail');
  await t.see('For Sam Staff (sam@smiles.example), charged to you.');
  await t.shot('billing-for-user');
  await page.getByLabel(/^Annual/).check();
  await page.getByLabel('Card number').fill('4242 4242 4242 4242');
  await page.getByLabel('Expiry (MM/YY)').fill('12/40');
  await page.getByLabel('Security code').fill('123');
  await page.getByRole('button', { name: 'Pay and start SecureMail' }).click();
  await t.heading('Messaging');
  await t.see('Thank you: SecureMail for sam@smiles.example started.');
  const row = page.locator('table.plans tbody tr');
  check((await row.count()) === 1, 'one plan paid for');
  check((await row.innerText()).includes('sam@smiles.example'), 'for Sam');
  check((await row.innerText()).includes('$100.00 USD'), 'annual price');
});
