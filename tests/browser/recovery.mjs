// A patient who forgot their password asks for a link, then sets a new
// password from the email with a code texted to their phone (the link alone
// is not enough), and signs in with it (and a code) afterwards; the old
// password no longer works.
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
  check(!(await page.locator('input[type=email]').isVisible()), 'the hidden user-name field for password managers shows');
  const fill = async () => {
    await page.getByLabel('New password').fill(fresh);
    await page.getByLabel('Type the same password again').fill(fresh);
  };
  // Every rule is listed before typing; the code is offered before it is asked for.
  await t.see('Not your email address, nor the part of it before the @.');
  check((await page.getByLabel('Code we sent to your phone').count()) === 0, 'the code is asked for before it was sent');
  await fill();
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await t.see('We sent you a 6-digit code.');
  check((await page.getByLabel('New password').inputValue()) === fresh, 'sending the code kept what was typed');
  await t.a11y('reset after the code was texted');
  // Without the right phone code the link does not change the password.
  await page.getByLabel('Code we sent to your phone').fill('000000');
  await page.getByRole('button', { name: 'Save password and continue' }).click();
  await t.see('not right');
  await t.a11y('reset with a wrong phone code');
  check(!page.url().includes('/inbox'), 'the link alone reset the password');

  await fill();
  await page.getByLabel('Code we sent to your phone').fill(await t.ask('code'));
  await t.shot('reset-with-code');
  await page.getByRole('button', { name: 'Save password and continue' }).click();
  await t.heading('Inbox');
  await t.see(t.env('CANARY'));

  await t.account('Sign out');
  await t.heading('Sign in');
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.see('Wrong email address or password.');
  await page.getByLabel('Password').fill(fresh);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');
  check(page.url().endsWith('/inbox'), `ended on ${page.url()}`);
});
