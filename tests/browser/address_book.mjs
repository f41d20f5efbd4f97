// The address book, with a keyboard alone: Dr Ada opens Contacts, types the
// start of a name in the search box, moves through the suggestions with the
// arrow keys, closes them with Escape, opens them again and picks one with
// Enter; the search shows that person. Then, in a form with a comma-separated
// address field and a role question for a new address (the compose form's
// contract), she picks a known patient by name: the address is filled in and
// the role question answered with the relationship the practice knows. Every
// state is checked with axe at phone and desktop width; options are large
// enough for a finger.
import { flow, check } from './lib.mjs';

flow(async (t) => {
  const { page } = t;
  await page.goto(`${t.env('PORTAL')}/signin`);
  await page.getByLabel('Email address').fill('ada@smiles.example');
  await page.getByLabel('Password').fill(t.env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await t.secondStep();
  await t.heading('Inbox');

  await page.goto(`${t.env('PORTAL')}/contacts`);
  await t.heading('Contacts');
  const search = page.getByRole('combobox', { name: 'Search by name or email address' });
  const listbox = page.getByRole('listbox');
  const options = listbox.getByRole('option');
  const selected = async () => page.locator('[role=option][aria-selected=true]').allInnerTexts();

  await search.focus();
  await page.keyboard.type('pa');
  await listbox.waitFor({ state: 'visible' });
  check((await options.count()) === 2, `two suggestions for "pa", got ${await options.allInnerTexts()}`);
  check((await search.getAttribute('aria-expanded')) === 'true', 'the combobox says it is expanded');
  await t.see('Paula Private');
  const box = await options.first().boundingBox();
  check(box && box.height >= 44, `a suggestion is a large target (${box && box.height}px high)`);
  await t.shot('address-book-suggestions');
  await t.a11y('contacts, suggestions open');

  await page.keyboard.press('ArrowDown');
  check((await selected()).join().includes('pat@example.org'), `first suggestion highlighted: ${await selected()}`);
  const active = await search.getAttribute('aria-activedescendant');
  check(active && (await page.locator(`#${active}`).innerText()).includes('pat@example.org'), 'aria-activedescendant names it');
  await page.keyboard.press('ArrowDown');
  check((await selected()).join().includes('paula@example.org'), `second suggestion highlighted: ${await selected()}`);
  await page.keyboard.press('Escape');
  await listbox.waitFor({ state: 'hidden' });
  check((await search.getAttribute('aria-expanded')) === 'false', 'Escape closes the list');
  check((await search.inputValue()) === 'pa', 'Escape leaves the text as typed');
  await page.keyboard.press('ArrowDown');
  await listbox.waitFor({ state: 'visible' });
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/contacts\?q=paula%40example\.org$/);
  await t.heading('Contacts');
  await t.see('Contacts matching');
  check((await page.locator('ul.contacts li').count()) === 1, 'the search shows the one person picked');
  await t.see('Paula Private');

  // The compose form's contract: comma-separated addresses in an
  // input[data-address-book], and a role question select[name="role:<address>"].
  await page.evaluate(() => {
    const form = document.createElement('form');
    form.id = 'write';
    form.innerHTML = `
      <h2>Write</h2>
      <div class="field"><label for="write-to">To</label>
        <input id="write-to" name="to" type="text" data-address-book></div>
      <div class="field"><label for="write-role">How does pat@example.org relate to your practice?</label>
        <select id="write-role" name="role:pat@example.org">
          <option value="">Choose</option>
          <option value="patient">Patient</option>
          <option value="doctor_in_practice">Doctor in my practice</option>
          <option value="staff_in_practice">Staff in my practice</option>
          <option value="doctor_other_practice">Doctor in another practice</option>
          <option value="staff_other_practice">Staff in another practice</option>
        </select></div>`;
    document.querySelector('main').appendChild(form);
  });
  // The page's own script enhances fields added later when it runs again.
  await page.addScriptTag({ url: '/static/address-book.js' });
  const to = page.getByRole('combobox', { name: 'To', exact: true });
  await to.focus();
  await page.keyboard.type('Pat E');
  await listbox.waitFor({ state: 'visible' });
  check((await options.count()) === 1, `one suggestion for "Pat E": ${await options.allInnerTexts()}`);
  await t.see('Patient');
  await t.a11y('a To field, suggestions open');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await listbox.waitFor({ state: 'hidden' });
  check((await to.inputValue()) === 'pat@example.org, ', `the address is filled in: "${await to.inputValue()}"`);
  check((await page.locator('#write-role').inputValue()) === 'patient', 'the role question is answered: patient');
  // A second address after the comma: suggestions for the token being typed.
  await page.keyboard.type('bo');
  await listbox.waitFor({ state: 'visible' });
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  check((await to.inputValue()) === 'pat@example.org, bob@smiles.example, ', `two addresses: "${await to.inputValue()}"`);

  // The compose form: Contacts' Write link opens it addressed to Paula; Pat is
  // added from the suggestions, a new address typed in Cc. Sending asks the
  // role of the new address only: the known contacts' are filled in.
  await page.getByRole('link', { name: 'Write to Paula Private' }).click();
  await t.heading('New secure message');
  const composeTo = page.getByRole('combobox', { name: 'To', exact: true });
  check((await composeTo.inputValue()) === 'paula@example.org', `addressed from Contacts: "${await composeTo.inputValue()}"`);
  await composeTo.focus();
  await page.keyboard.press('End');
  await page.keyboard.type(', Pat E');
  await listbox.waitFor({ state: 'visible' });
  await t.shot('address-book-compose');
  await t.a11y('compose, suggestions open');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  check((await composeTo.inputValue()) === 'paula@example.org, pat@example.org, ', `picked into To: "${await composeTo.inputValue()}"`);
  await page.getByRole('combobox', { name: 'Cc', exact: true }).fill('newdoc@else.example');
  await page.getByLabel('Subject').fill('Your check-up');
  await page.getByLabel('Message', { exact: true }).fill('See you on Monday.');
  await page.getByRole('button', { name: 'Send securely' }).click();
  await t.see('How do you know these new recipients?');
  await t.a11y('compose, the role question for a new address');
  check((await page.locator('select[name="role:newdoc@else.example"]').count()) === 1, 'the new address is asked about');
  check((await page.locator('select[name^="role:pat"], select[name^="role:paula"]').count()) === 0, 'known contacts are not asked about');
});
