/*
 * Sealpost task pane ("Secure options"): the Send Secure switch, a role for each
 * new recipient (known contacts filled in from the portal), the notification
 * note, and, where the portal's session cookie can't reach us, a place to give
 * an app password. Every change is saved on the message and its headers
 * rewritten at once (commands.js holds the logic; this file is the page).
 */
(function () {
  "use strict";

  var S = window.Sealpost;
  var item;
  var recipients = [];

  function $(id) {
    return document.getElementById(id);
  }

  function say(text) {
    $("status").textContent = text || "";
  }

  /** Reloads the state, lets `change` edit it, then saves and marks the message. */
  function update(change) {
    var state;
    return S.loadState(item)
      .then(function (loaded) {
        state = loaded;
        change(state);
        return S.saveState(item, state);
      })
      .then(function () {
        return S.applyHeaders(item, state, recipients);
      })
      .then(function () {
        return S.showState(item, state.secure);
      })
      .then(function () {
        say("");
        return state;
      })
      .catch(function () {
        say("Outlook could not save this. Please try again.");
      });
  }

  function row(entry) {
    var li = document.createElement("li");
    var address = document.createElement("span");
    address.className = "address";
    address.textContent = entry.address;
    li.appendChild(address);
    if (entry.known) {
      var known = document.createElement("span");
      known.className = "known";
      known.textContent = "Known contact: " + S.roleLabel(entry.known);
      li.appendChild(known);
      return li;
    }
    var select = document.createElement("select");
    select.setAttribute("aria-label", "Relationship of " + entry.address);
    var choose = document.createElement("option");
    choose.value = "";
    choose.textContent = "Choose a relationship\u2026";
    select.appendChild(choose);
    S.ROLES.forEach(function (role) {
      var option = document.createElement("option");
      option.value = role.value;
      option.textContent = role.label;
      select.appendChild(option);
    });
    select.value = entry.role;
    if (!entry.role) {
      li.className = "missing";
    }
    select.addEventListener("change", function () {
      li.className = select.value ? "" : "missing";
      update(function (state) {
        if (select.value) {
          state.roles[entry.address] = select.value;
        } else {
          delete state.roles[entry.address];
        }
      });
    });
    li.appendChild(select);
    return li;
  }

  /** Reads the recipients, asks the portal about them, and draws the list. */
  function refresh() {
    var state;
    return S.loadState(item)
      .then(function (loaded) {
        state = loaded;
        $("secure").checked = state.secure;
        if (document.activeElement !== $("notice")) {
          $("notice").value = state.notice;
        }
        return S.recipientsOf(item);
      })
      .then(function (list) {
        recipients = list;
        return S.resolveRecipients(state, recipients, S.portalLookup);
      })
      .then(function (result) {
        $("connect").hidden = !(result.error && (result.error.status === 401 || result.error.status === 403));
        if (result.error && $("connect").hidden) {
          say("Sealpost could not look up your contacts; choose each recipient's relationship.");
        }
        var list = $("recipients");
        list.textContent = "";
        result.rows.forEach(function (entry) {
          list.appendChild(row(entry));
        });
        $("recipients-section").hidden = result.rows.length === 0;
        return S.saveState(item, state);
      })
      .catch(function () {
        say("Outlook could not read this message's recipients.");
      });
  }

  function wire() {
    $("secure").addEventListener("change", function () {
      var on = $("secure").checked;
      update(function (state) {
        state.secure = on;
      });
    });
    $("notice").addEventListener("change", function () {
      var text = $("notice").value;
      update(function (state) {
        state.notice = text;
      });
    });
    $("connect-form").addEventListener("submit", function (event) {
      event.preventDefault();
      S.saveAuth($("connect-email").value, $("connect-password").value).then(
        function () {
          $("connect-password").value = "";
          refresh();
        },
        function (error) {
          say(
            error && error.status === 401
              ? "Wrong email address or app password."
              : "Could not connect to Sealpost; please try again.",
          );
        },
      );
    });
    if (item.addHandlerAsync && Office.EventType && Office.EventType.RecipientsChanged) {
      item.addHandlerAsync(Office.EventType.RecipientsChanged, refresh);
    }
  }

  Office.onReady(function () {
    item = Office.context.mailbox.item;
    wire();
    refresh();
  });
})();
