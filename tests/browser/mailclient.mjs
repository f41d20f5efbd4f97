// The portal as a mail client: Pat (browser in New York time) signs in, sees
// the folders with the inbox's unread count, opens a conversation of three
// messages (the earlier two folded, unfolded by a click), finds Reply, Reply
// all and Forward, prints the conversation (navigation hidden, content and
// attachment list shown), opens the Account menu by keyboard alone, and picks
// a time zone in the profile that the lists then use.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  const desktop = async (name) => {
    const before = page.viewportSize();
    await page.setViewportSize({ width: 1280, height: 900 });
    await t.shot(`${name}-desktop`);
    await page.setViewportSize(before);
  };
  const visible = (selector) => page.locator(selector).first().isVisible();
  // A message's body with this text (the folded line's snippet is not it).
  const body = (text) => page.locator('.secure .body', { hasText: text }).first();

  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByLabel('Email address').fill(t.env('EMAIL'));
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');

  // Folders: Compose, Inbox with its unread count (as text, not only colour), Sent, Contacts.
  const unread = t.env('UNREAD');
  const count = page.locator('nav.folders #inbox-unread');
  check((await count.textContent()).replace(/\s+/g, ' ').trim() === `${unread} unread`, `count: ${await count.textContent()}`);
  const folders = page.getByRole('navigation', { name: 'Mail' });
  for (const name of ['Compose', `Inbox ${unread} unread`, 'Sent', 'Contacts']) {
    check(await folders.getByRole('link', { name, exact: true }).isVisible(), `no ${name} in the folders`);
  }
  check((await folders.getByRole('link', { name: 'Compose' }).getAttribute('href')) === '/compose', 'Compose link');
  check((await page.locator('ul.messages li.unread .badge').count()) === Number(unread), 'unread rows marked New');
  // Times in the browser's zone (New York), with the zone named; never bare UTC.
  const when = page.locator('ul.messages time').first();
  check(/(EST|EDT)$/.test(await when.textContent()), `list time: ${await when.textContent()}`);
  check(/-0[45]:00$/.test(await when.getAttribute('datetime')), `datetime: ${await when.getAttribute('datetime')}`);
  await t.shot('mail-inbox');
  await desktop('mail-inbox');

  // The newest message of the conversation: the thread, earlier ones folded.
  await page.locator('ul.messages a', { hasText: t.env('THREAD_SUBJECT') }).first().click();
  await t.heading(t.env('THREAD_SUBJECT'));
  await t.see('3 messages');
  const earlier = page.locator('details.earlier');
  check((await earlier.count()) === 2, `folded: ${await earlier.count()}`);
  for (let i = 0; i < 2; i += 1) check(!(await earlier.nth(i).evaluate((d) => d.open)), `message ${i} open`);
  check(!(await body(t.env('FIRST_TEXT')).isVisible()), 'the first message shows while folded');
  check(await body(t.env('LAST_TEXT')).isVisible(), 'the newest message is folded');
  await earlier.first().locator('summary').click();
  await body(t.env('FIRST_TEXT')).waitFor({ state: 'visible' });
  await t.a11y('a conversation with an earlier message unfolded');
  // The count went down by the three messages now read.
  check((await count.textContent()).trim().startsWith(String(Number(unread) - 3)), `count after: ${await count.textContent()}`);
  const id = new URL(page.url()).pathname.split('/').pop();
  const actions = page.locator(`#message-${id} nav.actions`);
  for (const [name, href] of [['Reply', `/compose?reply=${id}`], ['Reply all', `/compose?reply_all=${id}`], ['Forward', `/compose?forward=${id}`]]) {
    const link = actions.getByRole('link', { name, exact: true });
    check((await link.getAttribute('href')) === href, `${name}: ${await link.getAttribute('href')}`);
  }
  await t.shot('mail-conversation');
  await desktop('mail-conversation');

  // Print the whole conversation: every message unfolded, no navigation.
  await page.getByRole('link', { name: 'Print conversation' }).click();
  await t.heading(t.env('THREAD_SUBJECT'));
  await page.emulateMedia({ media: 'print' });
  for (const selector of ['header.top', 'nav.folders', 'nav.actions', 'footer']) {
    check(!(await visible(selector)), `${selector} shows in print`);
  }
  for (const text of [t.env('FIRST_TEXT'), t.env('LAST_TEXT')]) {
    check(await body(text).isVisible(), `${text} missing in print`);
  }
  check(await page.locator('ul.attachments', { hasText: t.env('ATTACHMENT_NAME') }).isVisible(), 'attachment list in print');
  await t.shot('mail-print');
  await page.emulateMedia({ media: 'screen' });
  check(await visible('header.top'), 'the header is back on screen');
  // One message alone.
  await page.goto(`${t.env('PORTAL')}/m/${id}?print=message`);
  await page.emulateMedia({ media: 'print' });
  check(!(await visible('nav.folders')), 'folders in print');
  check(await body(t.env('LAST_TEXT')).isVisible(), 'the message in print');
  check(!(await body(t.env('FIRST_TEXT')).count()), 'another message printed with one');

  await page.emulateMedia({ media: 'screen' });
  await folders.getByRole('link', { name: /^Inbox/ }).click();
  await t.heading('Inbox');

  // The Account menu by keyboard: Tab to it, Enter opens it, Tab to Profile, Enter.
  const summary = page.locator('#account-menu > summary');
  await page.keyboard.press('Tab');
  for (let i = 0; i < 10 && !(await summary.evaluate((s) => s === document.activeElement)); i += 1) {
    await page.keyboard.press('Tab');
  }
  check(await summary.evaluate((s) => s === document.activeElement), 'Tab never reached the Account menu');
  check(!(await page.getByRole('link', { name: 'Passkeys', exact: true }).isVisible()), 'menu open before Enter');
  await page.keyboard.press('Enter');
  for (const name of ['Profile', 'Password', 'Two-step', 'Passkeys']) {
    check(await page.getByRole('link', { name, exact: true }).isVisible(), `${name} not in the open menu`);
  }
  check(await page.getByRole('button', { name: 'Sign out' }).isVisible(), 'Sign out not in the menu');
  await t.a11y('the Account menu open');
  await t.shot('mail-account-menu');
  await page.keyboard.press('Tab');
  check(await page.getByRole('link', { name: 'Profile' }).evaluate((a) => a === document.activeElement), 'Profile not focused');
  await page.keyboard.press('Enter');
  await t.heading('Profile');
  await t.see("your browser's time zone");
  await t.see('America/New_York');

  // A zone in the profile wins over the browser's.
  await page.getByLabel('Show times in').selectOption('Asia/Tokyo');
  await page.getByRole('button', { name: 'Save time zone' }).click();
  await t.see('Saved.');
  await t.see('Asia/Tokyo');
  await folders.getByRole('link', { name: /^Inbox/ }).click();
  await t.heading('Inbox');
  check(/JST$/.test(await when.textContent()), `list time after choosing Tokyo: ${await when.textContent()}`);
  check(/\+09:00$/.test(await when.getAttribute('datetime')), 'datetime in Tokyo');

  await t.account('Sign out');
  await t.heading('Sign in');
});
