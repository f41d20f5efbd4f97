// WCAG 2.1 AA check of the page a flow is on, with axe-core, at phone and at
// desktop width. lib.mjs calls it for every page a flow asserts a heading on
// (t.heading) and flows call t.a11y() for states worth checking on their own
// (an error message shown, a table filled).
//
// The portal's CSP allows scripts from 'self' only, so an injected <script>
// with axe's source would be refused (and reported as a console error). The
// source is evaluated through the DevTools protocol instead (page.evaluate),
// which the page's CSP does not govern; the page itself is not changed.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const source = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** The widths every page is checked at. */
export const WIDTHS = [
  { name: 'phone', width: 375, height: 740 },
  { name: 'desktop', width: 1280, height: 900 },
];

const RULES = { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } };

/** axe's violations on the page as it is now, one readable line per element. */
async function violations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(source);
  const found = await page.evaluate((rules) => window.axe.run(document, rules).then((r) => r.violations), RULES);
  return found.flatMap((v) => v.nodes.map((n) => {
    const why = n.failureSummary ? ` (${n.failureSummary.replace(/\s+/g, ' ').trim().slice(0, 240)})` : '';
    return `${v.id} [${v.impact}] at ${n.target.join(' ')}: ${v.help}${why}`;
  }));
}

/**
 * Checks the page at each width (restoring the flow's own viewport after);
 * throws with every violation, naming the page and the width.
 */
export async function checkPage(page, label) {
  const before = page.viewportSize();
  const lines = [];
  try {
    for (const { name, width, height } of WIDTHS) {
      await page.setViewportSize({ width, height });
      for (const line of await violations(page)) lines.push(`  ${name} ${width}px: ${line}`);
    }
  } finally {
    await page.setViewportSize(before);
  }
  if (lines.length) {
    throw new Error(`WCAG 2.1 AA violations (axe-core) on ${label} ${page.url()}:\n${lines.join('\n')}`);
  }
}
