// Plans in the browser, as a free doctor meets them: compose to an outsider is
// refused with "Buy now"; a declined test card says so; a good one makes the
// account paid at once and the same message goes out. Then the Outlook add-in
// is bought, the invoices are listed, one is opened and they are emailed; and
// cancelling SecureMail (after a confirmation that says so) cancels the
// Outlook plan too. Every page is checked with axe at phone and desktop width.
import { flow, check } from './lib.mjs';

async function pay(t, card) {
  const { page } = t;
  await page.getByLabel('Card number').fill(card);
  await page.getByLabel('Expiry (MM/YY)').fill('12/40');
  await page.getByLabel('Security code').fill('123');
  await page.getByRole('button', { name: /^Pay and start/ }).click();
}

async function write(t) {
  const { page } = t;
  await page.goto(`${t.env('PORTAL')}/compose`);
  await t.heading('New secure message');
  await page.getByLabel('To', { exact: true }).fill('pat@example.org');
  await page.getByLabel('Subject', { exact: true }).fill('Your results');
  await page.getByLabel('Message', { exact: true }).fill('All fine.');
  await page.getByRole('button', { name: 'Send securely' }).click();
  await page.waitForLoadState();
  // A new address: the form comes back asking how the doctor knows them.
  const role = page.locator('select[name="role:pat@example.org"]');
  if ((await role.count()) > 0) {
    await role.selectOption('patient');
    await page.getByRole('button', { name: 'Send securely' }).click();
    await page.waitForLoadState();
  }
}

flow(async (t) => {
  const { page } = t;
  t.expectFailure('/compose');
  t.expectFailure('/billing/buy');
  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByLabel('Email address').fill('doc@smiles.example');
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');

  await write(t);
  await t.heading('Upgrade to write to anyone');
  await t.shot('billing-upgrade');
  await page.getByRole('link', { name: 'Buy now' }).click();
  await t.heading('Buy SecureMail');
  await t.shot('billing-buy');
  await pay(t, '4000 0000 0000 0002');
  await t.see('The card was declined. Nothing was charged.');
  await t.a11y('buy, card declined');
  await pay(t, '4242 4242 4242 4242');
  await t.heading('Messaging');
  await t.see('Thank you: SecureMail is yours now.');

  await write(t);
  await page.waitForURL(/\/m\/[0-9a-f]+$/);

  await page.goto(`${t.env('PORTAL')}/billing/buy?product=outlook`);
  await t.heading('Buy Outlook add-in');
  await page.getByLabel(/^Annual/).check();
  await pay(t, '4242 4242 4242 4242');
  await t.heading('Messaging');
  await t.shot('billing-messaging');
  check((await page.locator('table.plans tbody tr').count()) === 2, 'two plans paid for');

  await page.getByRole('link', { name: 'Invoices' }).click();
  await t.heading('Invoices');
  await t.shot('billing-invoices');
  await page.getByRole('link', { name: 'INV-000001' }).click();
  await t.heading('Invoice INV-000001');
  await t.see('$10.00 USD');
  await page.getByRole('link', { name: 'All invoices' }).click();
  await t.heading('Invoices');
  await page.getByRole('button', { name: 'Email me my invoices' }).click();
  await t.see('Your invoices are on their way to your email address.');
  await t.a11y('invoices, emailed');

  await page.goto(`${t.env('PORTAL')}/account/messaging`);
  await t.heading('Messaging');
  await page.getByRole('link', { name: /^Cancel SecureMail/ }).click();
  await t.heading('Cancel SecureMail (monthly) for you?');
  await t.see('This also cancels the Outlook add-in plan of the same user.');
  await t.shot('billing-cancel');
  await page.getByRole('button', { name: 'Confirm cancellation' }).click();
  await t.heading('Messaging');
  await t.see('Cancelled. The plan runs to the end of its paid period');
  check((await page.getByText('Cancelled, ends on').count()) === 2, 'both plans cancelled');
  check((await page.getByRole('link', { name: /^Cancel / }).count()) === 0, 'nothing left to cancel');
});
