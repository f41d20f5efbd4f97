/*
 * Sealpost for Outlook: the Send Secure toggle, the OnMessageSend check, and the
 * helpers the task pane shares.
 *
 * A classic script (no modules, no bundler), so this one file runs in Outlook's
 * JavaScript-only runtime (classic Outlook on Windows), in commands.html and
 * taskpane.html, and under node's test runner (module.exports).
 *
 * What it writes on the message (the contract in DESIGN.md):
 *   X-Sealpost-Secure: 1
 *   X-Sealpost-Role: <address> <role>, <address> <role>   (new recipients only;
 *     Office.js sets a header name once, so all pairs share one header)
 *   X-Sealpost-Notice: <non-PHI note>   (RFC 2047 encoded words when not ASCII)
 * The toggle and the task pane write the headers as soon as something changes, so
 * a message is marked even where event-based activation is not available; the
 * OnMessageSend handler checks the recipients and writes them once more.
 */
(function (root) {
  "use strict";

  /** The portal; the portal serves this file with its public_url here. */
  var PORTAL = "https://localhost:8443";
  /** The item custom property that holds this add-in's state for a message. */
  var STATE_PROPERTY = "sealpost";
  /**
   * The roaming setting with the user's email and the add-in's own key, if they
   * connected: a key that opens the contacts API only (mail and IMAP refuse it).
   * The app password typed to connect is exchanged for it and never stored.
   */
  var AUTH_SETTING = "sealpostAuth";
  var NOTIFICATION_KEY = "sealpostSecure";
  /** The task pane button's id in manifest.xml, offered when a send is blocked. */
  var RECIPIENTS_BUTTON = "Sealpost.Recipients";
  var NOTICE_MAX = 500;
  var LOOKUP_BATCH = 100;
  var SECURE_HEADER = "X-Sealpost-Secure";
  var ROLE_HEADER = "X-Sealpost-Role";
  var NOTICE_HEADER = "X-Sealpost-Notice";

  /** The relationships a new recipient can have, as the gateway reads them. */
  var ROLES = [
    { value: "patient", label: "Patient" },
    { value: "doctor_in_practice", label: "Doctor in my practice" },
    { value: "staff_in_practice", label: "Staff in my practice" },
    { value: "doctor_other_practice", label: "Doctor in another practice" },
    { value: "staff_other_practice", label: "Staff in another practice" },
  ];

  function office() {
    return root.Office;
  }

  function isRole(value) {
    return ROLES.some(function (r) {
      return r.value === value;
    });
  }

  function roleLabel(value) {
    var role = ROLES.filter(function (r) {
      return r.value === value;
    })[0];
    return role ? role.label : "";
  }

  /** Runs an Office.js `...Async(callback)` call as a promise. */
  function officeCall(start) {
    return new Promise(function (resolve, reject) {
      start(function (result) {
        if (result && result.status === "failed") {
          reject(result.error || new Error("Outlook could not do this"));
        } else {
          resolve(result ? result.value : undefined);
        }
      });
    });
  }

  /** A lower-cased address, or "" if it is not one the gateway accepts. */
  function normalizeAddress(text) {
    var address = String(text || "")
      .trim()
      .replace(/^<+/, "")
      .replace(/>+$/, "")
      .toLowerCase();
    var at = address.indexOf("@");
    var ok =
      address.length <= 254 &&
      at > 0 &&
      address.indexOf("@", at + 1) < 0 &&
      /[.]/.test(address.slice(at + 1)) &&
      !/[\s<>()[\],;:"\\\u0000-\u001f]/.test(address);
    return ok ? address : "";
  }

  function emptyState() {
    return { secure: false, notice: "", roles: {}, known: {} };
  }

  /** Keeps only well-formed parts of a stored state. */
  function cleanState(raw) {
    var state = emptyState();
    if (!raw || typeof raw !== "object") {
      return state;
    }
    state.secure = raw.secure === true;
    state.notice = typeof raw.notice === "string" ? raw.notice.slice(0, NOTICE_MAX) : "";
    ["roles", "known"].forEach(function (field) {
      var map = raw[field] && typeof raw[field] === "object" ? raw[field] : {};
      Object.keys(map).forEach(function (address) {
        var clean = normalizeAddress(address);
        if (clean && isRole(map[address])) {
          state[field][clean] = map[address];
        }
      });
    });
    return state;
  }

  /** This message's Sealpost state, from its custom properties. */
  function loadState(item) {
    return officeCall(function (done) {
      item.loadCustomPropertiesAsync(done);
    }).then(function (props) {
      var raw = props.get(STATE_PROPERTY);
      try {
        return cleanState(typeof raw === "string" ? JSON.parse(raw) : raw);
      } catch (e) {
        return emptyState();
      }
    });
  }

  function saveState(item, state) {
    return officeCall(function (done) {
      item.loadCustomPropertiesAsync(done);
    }).then(function (props) {
      props.set(STATE_PROPERTY, JSON.stringify(cleanState(state)));
      return officeCall(function (done) {
        props.saveAsync(done);
      });
    });
  }

  /** UTF-8 bytes of a string (no TextEncoder in every Outlook runtime). */
  function utf8(text) {
    var bytes = [];
    for (var i = 0; i < text.length; i++) {
      var code = text.codePointAt(i);
      if (code > 0xffff) {
        i++;
      }
      if (code < 0x80) {
        bytes.push(code);
      } else if (code < 0x800) {
        bytes.push(0xc0 | (code >> 6), 0x80 | (code & 63));
      } else if (code < 0x10000) {
        bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
      } else {
        bytes.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 63), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
      }
    }
    return bytes;
  }

  var BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

  function base64(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i += 3) {
      var n = (bytes[i] << 16) | ((bytes[i + 1] || 0) << 8) | (bytes[i + 2] || 0);
      out += BASE64[(n >> 18) & 63] + BASE64[(n >> 12) & 63];
      out += i + 1 < bytes.length ? BASE64[(n >> 6) & 63] : "=";
      out += i + 2 < bytes.length ? BASE64[n & 63] : "=";
    }
    return out;
  }

  /**
   * The notice as a header value: whitespace (line breaks too) collapsed, at most
   * 500 characters, and as RFC 2047 "B" encoded words of at most 75 characters
   * (never splitting a character) unless it is plain printable ASCII.
   */
  function encodeNotice(text) {
    var clean = Array.from(String(text || "").replace(/\s+/g, " ").trim())
      .slice(0, NOTICE_MAX)
      .join("");
    if (!clean || (/^[\x20-\x7e]*$/.test(clean) && clean.indexOf("=?") < 0)) {
      return clean;
    }
    // 45 bytes make 60 base64 characters: "=?UTF-8?B?" + 60 + "?=" = 72.
    var words = [];
    var chunk = [];
    Array.from(clean).forEach(function (ch) {
      var bytes = utf8(ch);
      if (chunk.length + bytes.length > 45) {
        words.push(chunk);
        chunk = [];
      }
      chunk = chunk.concat(bytes);
    });
    words.push(chunk);
    return words
      .map(function (bytes) {
        return "=?UTF-8?B?" + base64(bytes) + "?=";
      })
      .join(" ");
  }

  /** "a@x patient, b@y doctor_in_practice" for the new recipients with a role. */
  function roleHeaderValue(state, recipients) {
    return recipients
      .filter(function (address) {
        return !state.known[address] && isRole(state.roles[address]);
      })
      .map(function (address) {
        return address + " " + state.roles[address];
      })
      .join(", ");
  }

  /** The headers a secure message carries, and the Sealpost ones it must not. */
  function headersFor(state, recipients) {
    var set = {};
    var remove = [];
    if (!state.secure) {
      return { set: set, remove: [SECURE_HEADER, ROLE_HEADER, NOTICE_HEADER] };
    }
    set[SECURE_HEADER] = "1";
    var roles = roleHeaderValue(state, recipients);
    if (roles) {
      set[ROLE_HEADER] = roles;
    } else {
      remove.push(ROLE_HEADER);
    }
    var notice = encodeNotice(state.notice);
    if (notice) {
      set[NOTICE_HEADER] = notice;
    } else {
      remove.push(NOTICE_HEADER);
    }
    return { set: set, remove: remove };
  }

  /** Writes (or removes) the X-Sealpost-* headers on the message. */
  function applyHeaders(item, state, recipients) {
    var headers = headersFor(state, recipients);
    var steps = Promise.resolve();
    if (Object.keys(headers.set).length) {
      steps = steps.then(function () {
        return officeCall(function (done) {
          item.internetHeaders.setAsync(headers.set, done);
        });
      });
    }
    return steps.then(function () {
      return officeCall(function (done) {
        item.internetHeaders.removeAsync(headers.remove, done);
      });
    });
  }

  /** Every recipient (To, Cc, Bcc), normalized, once each, in order. */
  function recipientsOf(item) {
    var fields = [item.to, item.cc, item.bcc].filter(Boolean);
    return Promise.all(
      fields.map(function (field) {
        return officeCall(function (done) {
          field.getAsync(done);
        });
      }),
    ).then(function (lists) {
      var seen = [];
      lists.forEach(function (list) {
        (list || []).forEach(function (r) {
          var address = normalizeAddress(r && r.emailAddress);
          if (address && seen.indexOf(address) < 0) {
            seen.push(address);
          }
        });
      });
      return seen;
    });
  }

  /** Shows on the message whether Send Secure is on. */
  function showState(item, secure) {
    var messages = item.notificationMessages;
    if (!secure) {
      return officeCall(function (done) {
        messages.removeAsync(NOTIFICATION_KEY, done);
      }).catch(function () {});
    }
    return officeCall(function (done) {
      messages.replaceAsync(
        NOTIFICATION_KEY,
        {
          type: "informationalMessage",
          message: "Send Secure is on: recipients get a notification and read this message in the Sealpost portal.",
          icon: "Icon.16",
          persistent: true,
        },
        done,
      );
    });
  }

  /** The email and add-in key saved when the user connected, if any. */
  function savedAuth() {
    var settings = office() && office().context && office().context.roamingSettings;
    var auth = settings ? settings.get(AUTH_SETTING) : null;
    return auth && auth.email && auth.key ? { email: auth.email, key: auth.key } : null;
  }

  /**
   * Connects the add-in: exchanges the email and an app password for the
   * add-in's own key (POST /api/addin-key) and saves only the key. With no
   * email or password, forgets the saved key. Rejects with `.status` when the
   * portal refuses.
   */
  function saveAuth(email, password, fetchImpl) {
    var settings = office().context.roamingSettings;
    var store = function () {
      return officeCall(function (done) {
        settings.saveAsync(done);
      });
    };
    email = String(email || "").trim();
    password = String(password || "").trim();
    if (!email || !password) {
      settings.remove(AUTH_SETTING);
      return store();
    }
    var fetcher = fetchImpl || root.fetch.bind(root);
    return fetcher(PORTAL + "/api/addin-key", {
      method: "POST",
      headers: { Accept: "application/json", Authorization: "Basic " + base64(utf8(email + ":" + password)) },
      credentials: "omit",
    })
      .then(function (response) {
        if (!response.ok) {
          var error = new Error("The Sealpost portal answered " + response.status);
          error.status = response.status;
          throw error;
        }
        return response.json();
      })
      .then(function (body) {
        settings.set(AUTH_SETTING, { email: email, key: String(body.key) });
        return store();
      });
  }

  /**
   * Asks the portal which addresses are known contacts of the user's practice:
   * { address: relationship }. Rejects with `.status` set on an HTTP error.
   */
  function lookupContacts(addresses, fetchImpl, auth) {
    var batches = [];
    for (var i = 0; i < addresses.length; i += LOOKUP_BATCH) {
      batches.push(addresses.slice(i, i + LOOKUP_BATCH));
    }
    var headers = { Accept: "application/json" };
    if (auth && auth.key) {
      headers.Authorization = "Bearer " + auth.key;
    }
    return Promise.all(
      batches.map(function (batch) {
        var url = PORTAL + "/api/contacts?addresses=" + encodeURIComponent(batch.join(","));
        return fetchImpl(url, { headers: headers, credentials: "same-origin" }).then(function (response) {
          if (!response.ok) {
            var error = new Error("The Sealpost portal answered " + response.status);
            error.status = response.status;
            throw error;
          }
          return response.json();
        });
      }),
    ).then(function (bodies) {
      var known = {};
      bodies.forEach(function (body) {
        ((body && body.contacts) || []).forEach(function (c) {
          var address = normalizeAddress(c.address);
          if (address && isRole(c.relationship)) {
            known[address] = c.relationship;
          }
        });
      });
      return known;
    });
  }

  /** `lookupContacts` with the page's fetch and the saved credentials. */
  function portalLookup(addresses) {
    return lookupContacts(addresses, root.fetch.bind(root), savedAuth());
  }

  /**
   * Fills `state.known` from the portal for recipients not known yet, and says
   * which recipients still need a role: { rows, missing, error }. A failed
   * lookup leaves those recipients to the person (error says why).
   */
  function resolveRecipients(state, recipients, lookup) {
    var ask = recipients.filter(function (address) {
      return !state.known[address];
    });
    var asked = ask.length ? lookup(ask) : Promise.resolve({});
    return asked
      .then(
        function (found) {
          Object.keys(found).forEach(function (address) {
            state.known[address] = found[address];
          });
          return null;
        },
        function (error) {
          return error;
        },
      )
      .then(function (error) {
        var rows = recipients.map(function (address) {
          var known = state.known[address] || "";
          return { address: address, known: known, role: known || state.roles[address] || "" };
        });
        var missing = rows
          .filter(function (row) {
            return !isRole(row.role);
          })
          .map(function (row) {
            return row.address;
          });
        return { rows: rows, missing: missing, error: error };
      });
  }

  function supports(version) {
    var requirements = office() && office().context && office().context.requirements;
    return Boolean(requirements && requirements.isSetSupported("Mailbox", version));
  }

  /** The Send Secure button: turns secure sending on or off for this message. */
  function toggleSecure(event) {
    var item = office().context.mailbox.item;
    var state;
    return loadState(item)
      .then(function (loaded) {
        state = loaded;
        state.secure = !state.secure;
        return saveState(item, state);
      })
      .then(function () {
        return recipientsOf(item);
      })
      .then(function (recipients) {
        return applyHeaders(item, state, recipients);
      })
      .then(function () {
        return showState(item, state.secure);
      })
      .catch(function () {
        return officeCall(function (done) {
          item.notificationMessages.replaceAsync(
            NOTIFICATION_KEY,
            { type: "errorMessage", message: "Sealpost could not change Send Secure. Please try again." },
            done,
          );
        }).catch(function () {});
      })
      .then(function () {
        if (event && event.completed) {
          event.completed();
        }
      });
  }

  function listForPeople(addresses) {
    var shown = addresses.slice(0, 5).join(", ");
    return addresses.length > 5 ? shown + " and " + (addresses.length - 5) + " more" : shown;
  }

  /**
   * OnMessageSend: a secure message goes only when every new recipient has a
   * role; then its headers are written once more and the send goes ahead.
   */
  function onMessageSendHandler(event) {
    var item = office().context.mailbox.item;
    var state;
    var recipients;
    return loadState(item)
      .then(function (loaded) {
        state = loaded;
        if (!state.secure) {
          return null;
        }
        return recipientsOf(item).then(function (list) {
          recipients = list;
          return resolveRecipients(state, recipients, portalLookup);
        });
      })
      .then(function (result) {
        if (!result) {
          return { allowEvent: true };
        }
        return saveState(item, state).then(function () {
          if (result.missing.length) {
            var block = {
              allowEvent: false,
              errorMessage:
                "Send Secure: choose how these new recipients relate to your practice: " +
                listForPeople(result.missing) +
                ". Open Secure options to choose.",
            };
            if (supports("1.14")) {
              block.commandId = RECIPIENTS_BUTTON;
            }
            return block;
          }
          return applyHeaders(item, state, recipients).then(function () {
            return { allowEvent: true };
          });
        });
      })
      .catch(function () {
        return {
          allowEvent: false,
          errorMessage:
            "Sealpost could not prepare this secure message. Try again, or turn Send Secure off and type [secure] in the subject.",
        };
      })
      .then(function (outcome) {
        event.completed(outcome);
        return outcome;
      });
  }

  var api = {
    PORTAL: PORTAL,
    ROLES: ROLES,
    STATE_PROPERTY: STATE_PROPERTY,
    NOTIFICATION_KEY: NOTIFICATION_KEY,
    RECIPIENTS_BUTTON: RECIPIENTS_BUTTON,
    roleLabel: roleLabel,
    normalizeAddress: normalizeAddress,
    emptyState: emptyState,
    loadState: loadState,
    saveState: saveState,
    encodeNotice: encodeNotice,
    roleHeaderValue: roleHeaderValue,
    headersFor: headersFor,
    applyHeaders: applyHeaders,
    recipientsOf: recipientsOf,
    showState: showState,
    savedAuth: savedAuth,
    saveAuth: saveAuth,
    lookupContacts: lookupContacts,
    portalLookup: portalLookup,
    resolveRecipients: resolveRecipients,
    toggleSecure: toggleSecure,
    onMessageSendHandler: onMessageSendHandler,
  };

  root.Sealpost = api;
  // ExecuteFunction and LaunchEvent find their functions by name.
  root.toggleSecure = toggleSecure;
  root.onMessageSendHandler = onMessageSendHandler;
  var host = office();
  if (host && host.actions && host.actions.associate) {
    host.actions.associate("toggleSecure", toggleSecure);
    host.actions.associate("onMessageSendHandler", onMessageSendHandler);
  }
  if (host && host.onReady && typeof module === "undefined") {
    host.onReady();
  }
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
