// A patient edits their profile: a phone that can't be one is refused next to
// its field, a good one is shown in national format; choosing a time zone
// changes how the inbox shows times; a new email address takes effect only
// once the link sent to it is opened.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');
  const shownTime = async () => (await page.locator('main time').first().innerText()).trim();
  const before = await shownTime();
  check(before.includes('JST'), `the browser's zone (Asia/Tokyo) first: ${before}`);

  await t.account('Profile');
  await t.heading('Profile');
  check((await page.getByRole('link', { name: 'Messaging' }).count()) > 0, 'the Messaging tab');
  await page.getByLabel('Full name').fill('Pat Q. Example');
  await page.getByLabel('Cell phone').fill('12345');
  await page.getByRole('button', { name: 'Save my details' }).click();
  await t.see('This is not a phone number we can use.');
  check((await page.getByLabel('Cell phone').getAttribute('aria-invalid')) === 'true', 'the field is marked');
  await t.a11y('profile with a phone error');
  await page.getByLabel('Cell phone').fill('201.555.0123');
  await page.getByLabel('Landline (optional)').fill('+44 20 7946 0000');
  await page.getByRole('button', { name: 'Save my details' }).click();
  await t.see('Your details are saved.');
  check((await page.getByLabel('Cell phone').inputValue()) === '(201) 555-0123', 'national format');
  check((await page.getByLabel('Landline (optional)').inputValue()) === '+44 20 7946 0000', 'international format');

  await page.getByLabel('Show times in').selectOption('America/New_York');
  await page.getByRole('button', { name: 'Save time zone' }).click();
  await t.see('the time zone you chose');
  await t.shot('profile');
  await page.goto(`${t.env('PORTAL')}/inbox`);
  await t.heading('Inbox');
  const after = await shownTime();
  check(after.includes('EST') && after !== before, `the chosen zone now: ${after}`);

  await t.account('Profile');
  await t.heading('Profile');
  await page.getByLabel('New email address').fill(t.env('NEW_EMAIL'));
  await page.getByRole('button', { name: 'Change my email address' }).click();
  await t.see('We sent a link to');
  await t.see(t.env('NEW_EMAIL'));
  check((await page.locator('#current-email').innerText()) === t.env('EMAIL'), 'unchanged until confirmed');
  await page.goto(await t.ask('email_link'));
  await t.heading('Confirm your new email address');
  await page.getByRole('button', { name: 'Use this address' }).click();
  await t.heading('Your email address is changed');
  await t.see(t.env('NEW_EMAIL'));
});
