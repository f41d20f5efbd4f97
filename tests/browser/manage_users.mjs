// A practice's User Manager (Dr Ada) signs in with her password and a texted
// code, opens Users, sees everyone invited with their registration status,
// corrects an invited colleague's email and phone (a new invitation goes out),
// re-invites another, and turns two-step verification off and on for one
// person. That person, a plain staff member, then signs in and finds no Users
// page: /practice/users is "Not found" for them.
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
  // Ada's own pages, each checked for accessibility by t.heading / t.a11y.
  await page.getByRole('link', { name: 'Sent', exact: true }).click();
  await t.heading('Sent');
  await page.locator('ul.messages a').first().click();
  await page.waitForURL(/\/m\/[^/]+$/);
  await t.a11y('a message, to its sender');
  await page.goto(t.env('ROLES_LINK'));
  await t.heading('Who are these recipients?');
  await t.account('Password');
  await t.heading('Change your password');
  await t.account('Two-step');
  await t.heading('Two-step verification');
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  await t.see('Scan the code with your app, then enter the code it shows.');
  await t.a11y('two-step with an authenticator QR code');
  await t.account('Mail apps');
  await t.heading('Passwords for mail apps');
  await page.getByLabel('Which app is it for?').fill('Outlook on my PC');
  await page.getByRole('button', { name: 'Make app password' }).click();
  await t.see('It will not be shown again.');
  await t.a11y('mail apps with a new app password');
  await page.getByRole('link', { name: 'Inbox', exact: true }).click();
  await t.heading('Inbox');
  await t.account('Users');
  await t.heading('Manage users');
  check((await status('ada@smiles.example')) === 'Fully registered', `Ada: ${await status('ada@smiles.example')}`);
  check((await status('bob@smiles.example')) === 'Invited', `Bob: ${await status('bob@smiles.example')}`);
  check((await status('nurse@example.org')) === 'Invited', `nurse: ${await status('nurse@example.org')}`);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(wide <= 0, `the users table is ${wide}px wider than a phone screen`);
  await t.shot('manage-users');

  // The practice's Secure delivery page (best-method delivery), off by default.
  await t.account('Secure delivery');
  await t.heading('Secure delivery');
  check(await page.getByLabel('Always send a notification; partners read the message here').isChecked(),
    'direct delivery is off by default');
  await page.getByLabel('Deliver secure mail directly to partners over verified TLS').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await t.heading('Secure delivery');
  check(await page.getByLabel('Deliver secure mail directly to partners over verified TLS').isChecked(),
    'the choice was not saved');
  await t.a11y('secure delivery after saving');
  await t.account('Users');
  await t.heading('Manage users');

  // Bob's invitation went to a mistyped address: correct it, a new one goes out.
  await row('bob@smiles.example').getByRole('link').click();
  await t.heading('Bob Staff');
  await t.see('Status: Invited');
  const bobPage = page.url();
  await page.getByLabel('Email address').fill('robert@smiles.example');
  await page.getByLabel('Phone').fill('+1 201 555 0155');
  await page.getByRole('button', { name: 'Save and send a new invitation' }).click();
  await t.see('Saved. We sent a new invitation to the new address.');
  await t.a11y('user page after saving');
  check((await page.getByLabel('Email address').inputValue()) === 'robert@smiles.example', 'the new address is not shown');

  // Two-step off (policy allows it here), on again, and off for good.
  await page.getByRole('button', { name: 'Turn two-step verification off' }).click();
  await t.see('Two-step verification is off.');
  await page.getByRole('button', { name: 'Turn two-step verification on' }).click();
  await t.see('Two-step verification is on.');
  await page.getByRole('button', { name: 'Turn two-step verification off' }).click();
  await t.see('Two-step verification is off.');
  await t.shot('manage-user');

  // The nurse never registered: send her invitation again.
  await page.getByRole('link', { name: 'All users' }).click();
  await t.heading('Manage users');
  check((await row('robert@smiles.example').count()) === 1, 'the corrected address is not listed');
  check((await row('bob@smiles.example').count()) === 0, 'the old address is still listed');
  await row('nurse@example.org').getByRole('link').click();
  await page.getByRole('button', { name: 'Send the invitation again' }).click();
  await t.see('We sent a new invitation. Earlier invitation links no longer work.');

  await t.account('Sign out');
  await t.heading('Sign in');

  // Bob, a plain staff member, registers (the Rust test sets his password) and
  // signs in with the password alone: the manager turned his second step off.
  await signIn('robert@smiles.example', await t.ask('staff_password'));
  await t.heading('Inbox');
  check(!(await page.getByRole('link', { name: 'Users', exact: true }).count()), 'staff see a Users link');
  for (const path of ['/practice/users', new URL(bobPage).pathname]) {
    await page.goto(new URL(path, page.url()).href);
    await t.heading('Not found');
    check(!(await page.content()).includes('ada@smiles.example'), `${path} shows the practice's users to staff`);
  }
});
