// A patient who forgot their password locks themselves out (the last two tries
// say how many are left), asks for a link, lets it expire, and still gets back
// in without help: the expired link offers "Send me a new link", the reset
// offers the phone code before asking for it, and the inbox opens.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const email = t.env('EMAIL');
  const fresh = 'Found-Again-Kite-58';
  await page.goto(`${t.env('PORTAL')}/signin`);
  await t.heading('Sign in');
  const wrong = async () => {
    await page.getByLabel('Email address').fill(email);
    await page.getByLabel('Password').fill('Not-My-Password-1');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  };
  for (let i = 0; i < 3; i += 1) await wrong();
  await t.see('Two more failed tries will lock sign-in for this address');
  await t.a11y('sign-in warning two tries left');
  await wrong();
  await t.see('One more failed try will lock sign-in for this address');
  await wrong(); // the fifth: sign-in locks
  await wrong();
  await t.see('Sign-in for this address is locked');
  await t.a11y('sign-in locked');

  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await t.heading('Forgot your password?');
  await page.getByLabel('Email address').fill(email);
  await page.getByRole('button', { name: 'Send me a link' }).click();
  await t.heading('Check your email');
  await t.see('we sent it a link to set a new password at');

  // The person comes back to the mail a day later: the link has expired.
  await page.goto(await t.ask('expired_link'));
  await t.heading('Link expired');
  check(!(await page.getByText('ask the sender').count()), 'the page sends the person to someone else');
  await t.shot('link-expired');
  await page.getByRole('button', { name: 'Send me a new link' }).click();
  await t.heading('We sent you a new link');
  await t.see('@example.org');

  await page.goto(await t.ask('new_link'));
  await t.heading('Choose your password');
  await t.see('Not your email address, nor the part of it before the @.');
  await page.getByLabel('New password').fill(fresh);
  await page.getByLabel('Type the same password again').fill(fresh);
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await t.see('We sent you a 6-digit code.');
  await page.getByLabel('Code we sent to your phone').fill(await t.ask('code'));
  await page.getByRole('button', { name: 'Save password and continue' }).click();
  await t.heading('Inbox');
  await t.see(t.env('CANARY'));
  check(page.url().endsWith('/inbox'), `ended on ${page.url()}`);
});
