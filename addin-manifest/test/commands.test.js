// Tests of the Send Secure toggle, the OnMessageSend handler and the helpers,
// against the Office.js stand-in in office-stub.js.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { makeOffice, makeEvent, fakeFetch } = require("./office-stub.js");

const SCRIPT = path.join(__dirname, "..", "src", "commands.js");

/** Loads commands.js afresh with a fake Office (and fetch) as globals. */
function load(options = {}, contacts = {}, status = 200) {
  const office = makeOffice(options);
  const api = fakeFetch(contacts, status);
  globalThis.Office = office.Office;
  globalThis.fetch = api.fetch;
  delete require.cache[SCRIPT];
  const sealpost = require(SCRIPT);
  return { sealpost, ...office, requests: api.requests };
}

function decodeWords(value) {
  return value
    .split(" ")
    .map((word) => {
      const m = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=$/.exec(word);
      assert.ok(m, `not an encoded word: ${word}`);
      assert.ok(word.length <= 75, `encoded word longer than 75: ${word.length}`);
      return Buffer.from(m[1], "base64");
    })
    .reduce((all, part) => Buffer.concat([all, part]), Buffer.alloc(0))
    .toString("utf8");
}

test("the functions are registered by the names the manifest uses", () => {
  const { record } = load();
  assert.equal(typeof record.associated.toggleSecure, "function");
  assert.equal(typeof record.associated.onMessageSendHandler, "function");
  assert.equal(typeof globalThis.onMessageSendHandler, "function");
});

test("toggle turns Send Secure on, marks the message and shows it, then off again", async () => {
  const { sealpost, record } = load({ to: ["pat@example.org"] });
  const on = makeEvent();
  await sealpost.toggleSecure(on);
  assert.deepEqual(on.calls, [undefined], "completed() once");
  assert.equal(JSON.parse(record.savedProperties.sealpost).secure, true, "state saved on the item");
  assert.equal(record.headers["X-Sealpost-Secure"], "1");
  const shown = record.notifications[sealpost.NOTIFICATION_KEY];
  assert.equal(shown.type, "informationalMessage");
  assert.match(shown.message, /Send Secure is on/);
  assert.equal(shown.persistent, true);

  const off = makeEvent();
  await sealpost.toggleSecure(off);
  assert.equal(off.calls.length, 1);
  assert.equal(JSON.parse(record.savedProperties.sealpost).secure, false);
  assert.deepEqual(record.headers, {}, "every Sealpost header removed");
  assert.equal(record.notifications[sealpost.NOTIFICATION_KEY], undefined);
});

test("toggle tells the person when Outlook refuses the headers, and still completes", async () => {
  const { sealpost, record } = load({ to: ["pat@example.org"], failHeaders: true });
  const event = makeEvent();
  await sealpost.toggleSecure(event);
  assert.equal(event.calls.length, 1);
  assert.equal(record.notifications[sealpost.NOTIFICATION_KEY].type, "errorMessage");
});

test("send is allowed untouched when Send Secure is off", async () => {
  const { sealpost, record, requests } = load({ to: ["pat@example.org"] });
  const event = makeEvent();
  await sealpost.onMessageSendHandler(event);
  assert.deepEqual(event.calls, [{ allowEvent: true }]);
  assert.deepEqual(record.headers, {});
  assert.equal(requests.length, 0, "no portal lookup for ordinary mail");
});

test("send sets the secure, role and notice headers when every new recipient has a role", async () => {
  const state = {
    secure: true,
    notice: "Your appointment follow-up",
    roles: { "pat@example.org": "patient", "doc@other.example": "doctor_other_practice" },
  };
  const { sealpost, record } = load({
    to: ["Pat@Example.org"],
    cc: ["doc@other.example"],
    properties: { sealpost: JSON.stringify(state) },
  });
  const event = makeEvent();
  await sealpost.onMessageSendHandler(event);
  assert.deepEqual(event.calls, [{ allowEvent: true }]);
  assert.deepEqual(record.headers, {
    "X-Sealpost-Secure": "1",
    "X-Sealpost-Role": "pat@example.org patient, doc@other.example doctor_other_practice",
    "X-Sealpost-Notice": "Your appointment follow-up",
  });
});

test("send is blocked while a new recipient has no role, naming them", async () => {
  const state = { secure: true, roles: { "pat@example.org": "patient" } };
  const { sealpost, record } = load(
    { to: ["pat@example.org", "new@example.net"], mailbox: "1.12", properties: { sealpost: JSON.stringify(state) } },
    {},
  );
  const event = makeEvent();
  await sealpost.onMessageSendHandler(event);
  assert.equal(event.calls.length, 1);
  const outcome = event.calls[0];
  assert.equal(outcome.allowEvent, false);
  assert.match(outcome.errorMessage, /new@example\.net/);
  assert.doesNotMatch(outcome.errorMessage, /pat@example\.org/);
  assert.equal(outcome.commandId, undefined, "no commandId before Mailbox 1.14");
  assert.equal(record.headers["X-Sealpost-Role"], undefined, "headers not rewritten for a blocked send");
});

test("a blocked send offers the Secure options pane where Mailbox 1.14 allows", async () => {
  const state = { secure: true };
  const { sealpost } = load({ bcc: ["new@example.net"], mailbox: "1.14", properties: { sealpost: JSON.stringify(state) } });
  const event = makeEvent();
  await sealpost.onMessageSendHandler(event);
  assert.equal(event.calls[0].allowEvent, false);
  assert.equal(event.calls[0].commandId, "Sealpost.Recipients");
});

test("known contacts from the portal need no role and get no role header", async () => {
  const state = { secure: true, roles: { "new@example.net": "staff_other_practice" } };
  const { sealpost, record, requests } = load(
    { to: ["pat@example.org", "new@example.net"], properties: { sealpost: JSON.stringify(state) } },
    { "pat@example.org": "patient" },
  );
  const event = makeEvent();
  await sealpost.onMessageSendHandler(event);
  assert.deepEqual(event.calls, [{ allowEvent: true }]);
  assert.equal(record.headers["X-Sealpost-Role"], "new@example.net staff_other_practice");
  assert.equal(requests.length, 1);
  assert.match(requests[0].url, /^https:\/\/localhost:8443\/api\/contacts\?addresses=/);
  const saved = JSON.parse(record.savedProperties.sealpost);
  assert.deepEqual(saved.known, { "pat@example.org": "patient" }, "the answer is remembered on the message");
});

test("when the portal refuses the lookup, unknown recipients still need a role", async () => {
  const state = { secure: true };
  const { sealpost } = load({ to: ["pat@example.org"], properties: { sealpost: JSON.stringify(state) } }, {}, 401);
  const event = makeEvent();
  await sealpost.onMessageSendHandler(event);
  assert.equal(event.calls[0].allowEvent, false);
  assert.match(event.calls[0].errorMessage, /pat@example\.org/);
});

test("a send that fails inside the handler is blocked with advice, never silently sent in clear", async () => {
  const state = { secure: true, roles: { "pat@example.org": "patient" } };
  const { sealpost } = load({ to: ["pat@example.org"], failHeaders: true, properties: { sealpost: JSON.stringify(state) } });
  const event = makeEvent();
  await sealpost.onMessageSendHandler(event);
  assert.equal(event.calls[0].allowEvent, false);
  assert.match(event.calls[0].errorMessage, /\[secure\]/);
});

test("role header: only new recipients with a valid role, in recipient order", () => {
  const { sealpost } = load();
  const state = sealpost.emptyState();
  state.roles = { "b@x.example": "doctor_in_practice", "a@x.example": "patient", "c@x.example": "surgeon" };
  state.known = { "d@x.example": "patient" };
  assert.equal(
    sealpost.roleHeaderValue(state, ["a@x.example", "b@x.example", "c@x.example", "d@x.example"]),
    "a@x.example patient, b@x.example doctor_in_practice",
  );
});

test("stored state is cleaned: bad roles and addresses are dropped", async () => {
  const { sealpost, item } = load({
    properties: {
      sealpost: JSON.stringify({ secure: "yes", roles: { "a@x.example": "patient", "bad address": "patient", "b@x.example": "boss" } }),
    },
  });
  const state = await sealpost.loadState(item);
  assert.equal(state.secure, false, "only true turns it on");
  assert.deepEqual(state.roles, { "a@x.example": "patient" });
});

test("notice: ASCII stays as it is, whitespace and line breaks collapse", () => {
  const { sealpost } = load();
  assert.equal(sealpost.encodeNotice("  Your   appointment\r\nfollow-up "), "Your appointment follow-up");
  assert.equal(sealpost.encodeNotice(""), "");
});

test("notice: non-ASCII becomes RFC 2047 encoded words that decode back", () => {
  const { sealpost } = load();
  const text = "Rappel : votre rendez-vous de contrôle — à bientôt 🙂 ".repeat(3).trim();
  const encoded = sealpost.encodeNotice(text);
  assert.match(encoded, /^=\?UTF-8\?B\?/);
  assert.ok(/^[\x20-\x7e]+$/.test(encoded), "the header value is ASCII");
  assert.equal(decodeWords(encoded), text);
});

test("notice: an ASCII note that looks like an encoded word is encoded too; length is capped", () => {
  const { sealpost } = load();
  assert.equal(decodeWords(sealpost.encodeNotice("=?x?=")), "=?x?=");
  assert.equal(sealpost.encodeNotice("a".repeat(800)).length, 500);
  assert.equal(decodeWords(sealpost.encodeNotice("é".repeat(800))), "é".repeat(500));
});

test("contacts lookup sends the add-in key and batches big lists", async () => {
  const { sealpost } = load();
  const { fetch, requests } = fakeFetch({ "a0@x.example": "patient" });
  const addresses = Array.from({ length: 150 }, (_, i) => `a${i}@x.example`);
  const known = await sealpost.lookupContacts(addresses, fetch, { email: "ada@smiles.example", key: "spk_abc" });
  assert.deepEqual(known, { "a0@x.example": "patient" });
  assert.equal(requests.length, 2);
  assert.equal(requests[0].init.headers.Authorization, "Bearer spk_abc");
});

test("contacts lookup reports the HTTP status on failure", async () => {
  const { sealpost } = load();
  const { fetch } = fakeFetch({}, 401);
  await assert.rejects(sealpost.lookupContacts(["a@x.example"], fetch, null), (e) => e.status === 401);
});

test("auto-fill: known contacts get their relationship, others stay to choose", async () => {
  const { sealpost } = load();
  const { fetch } = fakeFetch({ "pat@example.org": "patient", "sam@smiles.example": "staff_in_practice" });
  const state = sealpost.emptyState();
  state.roles["new@example.net"] = "doctor_other_practice";
  const result = await sealpost.resolveRecipients(
    state,
    ["pat@example.org", "sam@smiles.example", "new@example.net", "who@example.net"],
    (a) => sealpost.lookupContacts(a, fetch, null),
  );
  assert.equal(result.error, null);
  assert.deepEqual(result.rows, [
    { address: "pat@example.org", known: "patient", role: "patient" },
    { address: "sam@smiles.example", known: "staff_in_practice", role: "staff_in_practice" },
    { address: "new@example.net", known: "", role: "doctor_other_practice" },
    { address: "who@example.net", known: "", role: "" },
  ]);
  assert.deepEqual(result.missing, ["who@example.net"]);
  assert.equal(sealpost.roleLabel("staff_in_practice"), "Staff in my practice");
});

test("connecting exchanges the app password for the add-in key and stores only the key", async () => {
  const { sealpost, record } = load();
  assert.equal(sealpost.savedAuth(), null);
  const requests = [];
  const exchange = async (url, init) => {
    requests.push({ url, init });
    return { ok: true, status: 200, json: async () => ({ key: "spk_contacts_only" }) };
  };
  await sealpost.saveAuth(" ada@smiles.example ", "abcd-efgh", exchange);
  assert.equal(requests.length, 1);
  assert.match(requests[0].url, /\/api\/addin-key$/);
  assert.equal(requests[0].init.method, "POST");
  const basic = "Basic " + Buffer.from("ada@smiles.example:abcd-efgh").toString("base64");
  assert.equal(requests[0].init.headers.Authorization, basic);
  assert.deepEqual(sealpost.savedAuth(), { email: "ada@smiles.example", key: "spk_contacts_only" });
  assert.ok(!JSON.stringify(record.roaming).includes("abcd-efgh"), "the app password is not stored");
  const refused = async () => ({ ok: false, status: 401, json: async () => ({}) });
  await assert.rejects(sealpost.saveAuth("ada@smiles.example", "wrong", refused), (e) => e.status === 401);
  assert.deepEqual(sealpost.savedAuth(), { email: "ada@smiles.example", key: "spk_contacts_only" });
  await sealpost.saveAuth("", "");
  assert.equal(record.roaming.sealpostAuth, undefined);
});
