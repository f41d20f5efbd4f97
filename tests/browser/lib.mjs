// Shared by every flow: starts Debian's headless Chromium through playwright-core,
// gives the flow a phone-size page, and talks to the Rust test that ran it.
//
// A flow is one file: `import { flow } from './lib.mjs'; flow(async (t) => { ... })`.
// `t.page` is the page, `t.env(name)` a required SEALPOST_* value from the test,
// `t.ask(what)` asks the Rust test for something it knows (a link from a mail),
// `t.shot(name)` saves a full-page screenshot, `t.account(name)` follows an
// entry of the Account menu, `t.see(text)` and `t.heading(text)`
// assert what the user sees, `t.secondStep()` enters the texted sign-in code.
// Every page a flow asserts a heading on is checked against WCAG 2.1 AA with
// axe-core at phone and desktop width (a11y.mjs); `t.a11y(label)` checks the
// page as it is now (an error shown). Any failed assertion or accessibility
// violation exits non-zero with a message.

import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { checkPage } from './a11y.mjs';

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** A required value the Rust test put in the environment, e.g. env('PORTAL'). */
export function env(name) {
  const value = process.env[`SEALPOST_${name}`];
  if (value === undefined || value === '') throw new Error(`SEALPOST_${name} is not set`);
  return value;
}

/** Asks the Rust test for something (one line on stdout) and waits for its answer. */
export async function ask(what) {
  process.stdout.write(`ask ${what}\n`);
  const { value, done } = await lines.next();
  if (done) throw new Error(`no answer to ${what}`);
  return value;
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Runs one flow in a fresh browser profile; exits 0 only if it finished. */
export async function flow(body) {
  // playwright-core gives every launch a new, empty profile of its own.
  const browser = await chromium.launch({
    executablePath: process.env.SEALPOST_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run',
    ],
  });
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
    acceptDownloads: true,
    // The browser's time zone when a test sets one (the portal shows times in it).
    timezoneId: process.env.SEALPOST_TIMEZONE || undefined,
  });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  const problems = [];
  const expected = []; // URL endings a flow expects to fail (t.expectFailure)
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Error statuses of pages are the flows' business (a wrong password is a 401);
  // a failing stylesheet, script or fetch, a CSP refusal or a script error is not.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    const kind = r.request().resourceType();
    const allowed = ['/favicon.ico', ...expected].some((end) => r.url().endsWith(end));
    if (r.status() >= 400 && kind !== 'document' && !allowed) {
      problems.push(`${kind} ${r.url()} answered ${r.status()}`);
    }
  });
  const checked = new Set(); // heading and path of the pages axe has checked
  const shots = process.env.SEALPOST_SCREENSHOTS;
  if (shots) mkdirSync(shots, { recursive: true });
  const t = {
    page, context, browser, env, ask, check,
    problems,
    /** Lets requests to URLs ending in `end` answer with an error status. */
    expectFailure(end) { expected.push(end); },
    async shot(name) {
      if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
    },
    /** Checks the page as it is now against WCAG 2.1 AA at both widths; prints `a11y LABEL`. */
    async a11y(label) {
      await checkPage(page, `"${label}"`);
      process.stdout.write(`a11y ${label}\n`);
    },
    /** Asserts a heading with this text is on the page (and checks the page once per heading). */
    async heading(text) {
      const h = page.getByRole('heading', { name: text });
      await h.first().waitFor({ state: 'visible' }).catch(async () => {
        const seen = await page.locator('h1, h2').allInnerTexts();
        throw new Error(`no heading "${text}" on ${page.url()}; headings: ${JSON.stringify(seen)}`);
      });
      const key = `${text} on ${new URL(page.url()).pathname}`;
      if (!checked.has(key)) {
        checked.add(key);
        await t.a11y(key);
      }
    },
    /**
     * On the two-step page after a password: asks the Rust test for the code
     * texted to the phone (`ask code`), enters it and continues. `remember`
     * ticks "Remember this device"; `shot` names a screenshot of the page;
     * `sent: false` when the page is shown again after a wrong code.
     */
    async secondStep({ remember = false, shot, sent = true } = {}) {
      await t.heading('Two-step verification');
      if (sent) await t.see('We sent a text message to your phone ending in');
      const code = await ask('code');
      check(/^[0-9]{6}$/.test(code), `the code ${code} is not 6 digits`);
      await page.getByLabel('Code', { exact: true }).fill(code);
      if (remember) await page.getByLabel('Remember this device for 30 days').check();
      if (shot) await t.shot(shot);
      await page.getByRole('button', { name: 'Verify and continue' }).click();
    },
    /**
     * Follows `name` in the Account menu (a <details> in the page header): one
     * of its links (Profile, Password, Two-step, Passkeys, Mail apps, Users) or
     * the Sign out button. Opens the menu first if it is closed.
     */
    async account(name) {
      const menu = page.locator('details#account-menu');
      if (!(await menu.evaluate((d) => d.open))) await menu.locator('summary').click();
      const link = menu.getByRole('link', { name, exact: true });
      await ((await link.count()) ? link : menu.getByRole('button', { name, exact: true })).click();
    },
    /** Asserts the page shows this text. */
    async see(text) {
      await page.getByText(text).first().waitFor({ state: 'visible' }).catch(async () => {
        const body = (await page.locator('body').innerText()).slice(0, 2000);
        throw new Error(`"${text}" not shown on ${page.url()}; page says: ${body}`);
      });
    },
  };
  let code = 0;
  try {
    await body(t);
    check(problems.length === 0, `the page reported errors: ${problems.join('; ')}`);
    process.stdout.write('flow ok\n');
  } catch (error) {
    code = 1;
    process.stderr.write(`flow failed at ${page.url()}: ${error.stack || error}\n`);
    if (shots) await page.screenshot({ path: `${shots}/FAILED-${process.argv[1].split('/').pop()}.png`, fullPage: true }).catch(() => {});
  }
  await browser.close();
  process.exit(code);
}
