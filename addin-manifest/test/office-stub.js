// A stand-in for Office.js in Outlook compose mode: the parts Sealpost uses, with
// callbacks run asynchronously like the real thing, and every effect recorded.
"use strict";

function later(callback, result) {
  setImmediate(() => callback(result));
}

function ok(value) {
  return { status: "succeeded", value };
}

function failed(message) {
  return { status: "failed", error: { name: "GenericResponseError", message } };
}

/**
 * A fake `Office` global around one message being written.
 * options: to, cc, bcc (arrays of addresses), properties (saved custom
 * properties), roaming (roaming settings), mailbox (newest supported
 * requirement set, e.g. "1.14"), failHeaders (internetHeaders calls fail).
 */
function makeOffice(options = {}) {
  const record = {
    headers: {},
    headerCalls: [],
    notifications: {},
    associated: {},
    savedProperties: { ...(options.properties || {}) },
    roaming: { ...(options.roaming || {}) },
  };
  const recipients = (list) => {
    const field = {
      list: (list || []).map((a) => ({ emailAddress: a, displayName: a.split("@")[0] })),
      getAsync(callback) {
        later(callback, ok(field.list.map((r) => ({ ...r }))));
      },
    };
    return field;
  };
  const item = {
    itemType: "message",
    to: recipients(options.to),
    cc: recipients(options.cc),
    bcc: recipients(options.bcc),
    loadCustomPropertiesAsync(callback) {
      const draft = { ...record.savedProperties };
      later(
        callback,
        ok({
          get: (name) => draft[name],
          set: (name, value) => {
            draft[name] = value;
          },
          remove: (name) => {
            delete draft[name];
          },
          saveAsync(done) {
            record.savedProperties = { ...draft };
            later(done, ok());
          },
        }),
      );
    },
    internetHeaders: {
      setAsync(headers, callback) {
        record.headerCalls.push(["set", { ...headers }]);
        if (options.failHeaders) {
          return later(callback, failed("headers refused"));
        }
        for (const [name, value] of Object.entries(headers)) {
          if (typeof value !== "string") {
            return later(callback, failed("header values are strings"));
          }
          record.headers[name] = value;
        }
        later(callback, ok());
      },
      removeAsync(names, callback) {
        record.headerCalls.push(["remove", [...names]]);
        if (options.failHeaders) {
          return later(callback, failed("headers refused"));
        }
        names.forEach((name) => delete record.headers[name]);
        later(callback, ok());
      },
      getAsync(names, callback) {
        const found = {};
        names.filter((n) => n in record.headers).forEach((n) => (found[n] = record.headers[n]));
        later(callback, ok(found));
      },
    },
    notificationMessages: {
      replaceAsync(key, details, callback) {
        if (details.type === "informationalMessage" && (!details.icon || details.persistent === undefined)) {
          return later(callback, failed("informational messages need an icon and persistent"));
        }
        if (String(details.message).length > 150) {
          return later(callback, failed("message longer than 150 characters"));
        }
        record.notifications[key] = { ...details };
        later(callback, ok());
      },
      removeAsync(key, callback) {
        if (!(key in record.notifications)) {
          return later(callback, failed("no such notification"));
        }
        delete record.notifications[key];
        later(callback, ok());
      },
    },
  };
  const newest = options.mailbox || "1.12";
  const Office = {
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    MailboxEnums: { ItemNotificationMessageType: { InformationalMessage: "informationalMessage", ErrorMessage: "errorMessage" } },
    context: {
      mailbox: { item },
      requirements: {
        isSetSupported(name, version) {
          const [a, b] = String(version).split(".").map(Number);
          const [c, d] = newest.split(".").map(Number);
          return name === "Mailbox" && (c > a || (c === a && d >= b));
        },
      },
      roamingSettings: {
        get: (name) => record.roaming[name],
        set: (name, value) => {
          record.roaming[name] = value;
        },
        remove: (name) => {
          delete record.roaming[name];
        },
        saveAsync(callback) {
          later(callback, ok());
        },
      },
    },
    actions: {
      associate(name, fn) {
        record.associated[name] = fn;
      },
    },
    onReady() {
      return Promise.resolve({ host: "Outlook" });
    },
  };
  return { Office, item, record };
}

/** An event object for ExecuteFunction / OnMessageSend that records completed(). */
function makeEvent() {
  const event = { calls: [] };
  event.done = new Promise((resolve) => {
    event.completed = (options) => {
      event.calls.push(options);
      resolve(options);
    };
  });
  return event;
}

/** A fake fetch answering /api/contacts from a map { address: relationship }. */
function fakeFetch(contacts, status = 200) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url, init });
    if (status !== 200) {
      return { ok: false, status, json: async () => ({ status, title: "Not signed in" }) };
    }
    const asked = decodeURIComponent(new URL(url).searchParams.get("addresses") || "").split(",");
    return {
      ok: true,
      status: 200,
      json: async () => ({
        contacts: asked
          .filter((a) => contacts[a])
          .map((a) => ({ address: a, relationship: contacts[a], label: contacts[a] })),
      }),
    };
  };
  return { fetch, requests };
}

module.exports = { makeOffice, makeEvent, fakeFetch };
