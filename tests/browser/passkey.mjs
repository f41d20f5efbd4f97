// Pat adds a passkey on the account page (Chromium's virtual authenticator
// stands in for the phone's screen lock), signs out, and signs back in with it
// alone: no password and no two-step code. A passkey answer whose user handle was changed in transit is refused.
// Prints the genuine sign-in answer as `assertion {json}` for the Rust test to
// replay.
import { randomBytes } from 'node:crypto';
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page, context } = t;
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');

  await t.account('Passkeys');
  await t.heading('Passkeys');
  await t.see('You have no passkeys yet.');
  await page.getByLabel('Name for this passkey').fill("Pat's phone");
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await t.see('Passkey added.');
  await t.see("Pat's phone");
  await t.a11y('passkeys with one passkey');
  await t.shot('passkeys');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, `credentials: ${JSON.stringify(credentials)}`);

  await t.account('Sign out');
  await t.heading('Sign in');
  await t.shot('signin');
  await t.ask('lock_account');

  // Someone swaps the user handle for another account's: refused.
  await page.route('**/signin/passkey/finish', async (route) => {
    const body = JSON.parse(route.request().postData());
    body.credential.response.userHandle = randomBytes(16).toString('base64url');
    await route.continue({ postData: JSON.stringify(body) });
  });
  t.expectFailure('/signin/passkey/finish');
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await t.see('That passkey could not sign you in.');
  await t.a11y('sign-in after a refused passkey');
  check(page.url().includes('/signin'), `a tampered passkey answer got to ${page.url()}`);
  await page.unrouteAll();

  const visited = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/signin/passkey/finish')) process.stdout.write(`assertion ${request.postData()}\n`);
    if (request.isNavigationRequest()) visited.push(new URL(request.url()).pathname);
  });
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await t.heading('Inbox');
  await t.see(t.env('CANARY'));
  check(!(await page.getByLabel('Password').count()), 'still on the sign-in page');
  // A passkey is both steps in one: no code was asked for.
  check(!visited.some((path) => path.startsWith('/signin/verify')), `a passkey sign-in went through ${visited.join(', ')}`);
  check(!(await page.getByLabel('Code', { exact: true }).count()), 'a code field after a passkey');
});
