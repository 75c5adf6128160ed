// The astrbot-rs dashboard: a hash router over a few pages. Every value from
// the server or the user goes into the DOM as text (textContent), never as
// HTML.
"use strict";
(function () {
  var TOKEN_KEY = "astrbot.token";
  var HINT_KEY = "astrbot.change_pwd_hint";
  var LANG_KEY = "astrbot.lang";
  var SCOPES = ["chat", "config", "file", "im"];

  // ---- language -----------------------------------------------------------

  function initialLang() {
    var saved = null;
    try { saved = localStorage.getItem(LANG_KEY); } catch (e) { /* private mode */ }
    if (saved === "en" || saved === "zh") return saved;
    var browser = (navigator.language || "en").toLowerCase();
    return browser.indexOf("zh") === 0 ? "zh" : "en";
  }
  var lang = initialLang();

  function t(key, vars) {
    var table = window.I18N[lang] || window.I18N.en;
    var text = table[key] !== undefined ? table[key] : (window.I18N.en[key] || key);
    if (vars) {
      Object.keys(vars).forEach(function (name) {
        text = text.split("{" + name + "}").join(String(vars[name]));
      });
    }
    return text;
  }

  function applyStaticText() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    var toggle = document.getElementById("lang-toggle");
    toggle.textContent = t("lang.switch");
    toggle.setAttribute("aria-label", t("lang.switch_label"));
  }

  // ---- DOM helpers ----------------------------------------------------------

  // el("tag", {attr: value, onclick: fn}, child, "text", ...): children that
  // are strings become text nodes.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === undefined || value === null || value === false) return;
      if (name.indexOf("on") === 0 && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else if (name === "text") {
        node.textContent = value;
      } else if (value === true) {
        node.setAttribute(name, "");
      } else {
        node.setAttribute(name, String(value));
      }
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  var messageTimer = null;
  function showMessage(text, kind) {
    var box = document.getElementById("message");
    box.textContent = text;
    box.className = "message " + (kind || "error");
    box.hidden = false;
    clearTimeout(messageTimer);
    if (kind === "ok") {
      messageTimer = setTimeout(function () { box.hidden = true; }, 6000);
    }
  }
  function clearMessage() {
    clearTimeout(messageTimer);
    document.getElementById("message").hidden = true;
  }

  function formatTime(iso) {
    if (!iso) return null;
    var date = new Date(iso);
    if (isNaN(date.getTime())) return String(iso);
    return date.toLocaleString(lang === "zh" ? "zh-CN" : "en");
  }

  // ---- session --------------------------------------------------------------

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  // The JWT's payload, read but not verified (the server does).
  function tokenPayload(jwt) {
    try {
      var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) part += "=";
      // atob gives one character per byte; the payload is UTF-8 (a name
      // such as 管理员).
      var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      return {};
    }
  }

  function tokenExpired(jwt) {
    var payload = tokenPayload(jwt);
    return typeof payload.exp === "number" && payload.exp * 1000 <= Date.now();
  }

  function signOut(reasonKey) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(HINT_KEY);
    shownKey = null;
    if (location.hash !== "#/login") {
      location.hash = "#/login";
    } else {
      render();
    }
    if (reasonKey) showMessage(t(reasonKey), reasonKey === "login.logged_out" ? "ok" : "error");
  }

  // Calls the admin API; resolves with `data`, rejects with an Error whose
  // message is the server's (or a network/status message).
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (token()) headers["Authorization"] = "Bearer " + token();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).catch(function () {
      throw new Error(t("error.network"));
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (json) {
        if (response.status === 401 && path !== "/api/auth/login") {
          signOut("login.expired");
          var expired = new Error(t("login.expired"));
          expired.handled = true;
          throw expired;
        }
        if (!json || json.status !== "ok") {
          throw new Error((json && json.message) || t("error.generic", { status: response.status }));
        }
        return json;
      });
    });
  }

  function reportError(error) {
    if (!error.handled) showMessage(error.message, "error");
  }

  // ---- MD5 (RFC 1321), for posting the password as AstrBot's UI does -------

  function md5(text) {
    var bytes = new TextEncoder().encode(text);
    var bitLength = bytes.length * 8;
    var padded = new Uint8Array(((bytes.length + 8) >> 6) * 64 + 64);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    var view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, bitLength >>> 0, true);
    view.setUint32(padded.length - 4, Math.floor(bitLength / 4294967296), true);
    var S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    var K = [];
    for (var i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296) | 0;
    var a0 = 0x67452301, b0 = 0xefcdab89 | 0, c0 = 0x98badcfe | 0, d0 = 0x10325476;
    for (var offset = 0; offset < padded.length; offset += 64) {
      var M = [];
      for (var j = 0; j < 16; j++) M[j] = view.getUint32(offset + j * 4, true);
      var A = a0, B = b0, C = c0, D = d0;
      for (var k = 0; k < 64; k++) {
        var F, g;
        if (k < 16) { F = (B & C) | (~B & D); g = k; }
        else if (k < 32) { F = (D & B) | (~D & C); g = (5 * k + 1) % 16; }
        else if (k < 48) { F = B ^ C ^ D; g = (3 * k + 5) % 16; }
        else { F = C ^ (B | ~D); g = (7 * k) % 16; }
        var s = S[(k >> 4) * 4 + (k % 4)];
        var sum = (A + F + K[k] + M[g]) | 0;
        A = D; D = C; C = B;
        B = (B + ((sum << s) | (sum >>> (32 - s)))) | 0;
      }
      a0 = (a0 + A) | 0; b0 = (b0 + B) | 0; c0 = (c0 + C) | 0; d0 = (d0 + D) | 0;
    }
    return [a0, b0, c0, d0].map(function (word) {
      var hex = "";
      for (var b = 0; b < 4; b++) hex += ((word >>> (b * 8)) & 0xff).toString(16).padStart(2, "0");
      return hex;
    }).join("");
  }

  // ---- pages ----------------------------------------------------------------

  function field(id, labelKey, input) {
    input.id = id;
    return el("div", { class: "field" }, el("label", { for: id, text: t(labelKey) }), input);
  }

  function loginPage(view) {
    var username = el("input", { type: "text", name: "username", autocomplete: "username", required: true, value: "astrbot" });
    var password = el("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
    var submit = el("button", { type: "submit", class: "primary", text: t("login.submit") });
    var form = el("form", { class: "card narrow", id: "login-form", onsubmit: function (event) {
      event.preventDefault();
      submit.disabled = true;
      submit.textContent = t("login.busy");
      api("POST", "/api/auth/login", { username: username.value, password: md5(password.value) })
        .then(function (json) {
          sessionStorage.setItem(TOKEN_KEY, json.data.token);
          sessionStorage.setItem(HINT_KEY, json.data.change_pwd_hint ? "1" : "0");
          clearMessage();
          location.hash = "#/keys";
        })
        .catch(reportError)
        .then(function () {
          submit.disabled = false;
          submit.textContent = t("login.submit");
        });
    } },
      el("h1", { text: t("login.title") }),
      field("login-username", "login.username", username),
      field("login-password", "login.password", password),
      el("div", { class: "actions" }, submit));
    view.appendChild(form);
    (username.value ? password : username).focus();
  }

  // The key created last, shown once; forgotten when leaving the page.
  var shownKey = null;

  function keyStatus(key) {
    if (key.is_revoked) return "revoked";
    if (key.is_expired) return "expired";
    return "active";
  }

  function keysPage(view) {
    view.appendChild(el("h1", { text: t("keys.title") }));
    view.appendChild(el("p", { class: "muted" }, t("keys.intro") + " ",
      el("a", { href: "#/docs", id: "keys-docs-link", text: t("nav.docs") })));

    // The one-time display of a new key.
    if (shownKey) {
      var keyText = el("code", { id: "new-key-value", class: "secret", text: shownKey });
      var copy = el("button", { type: "button", id: "copy-key", text: t("keys.copy"), onclick: function () {
        var done = function () { copy.textContent = t("keys.copied"); };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(shownKey).then(done, function () {
            showMessage(t("keys.copy_failed"), "error");
          });
        } else {
          showMessage(t("keys.copy_failed"), "error");
        }
      } });
      view.appendChild(el("section", { class: "card new-key", id: "new-key", "aria-labelledby": "new-key-title" },
        el("h2", { id: "new-key-title", text: t("keys.new_key_title") }),
        el("div", { class: "key-row" }, keyText, copy),
        el("p", { class: "warning", text: t("keys.new_key_note") }),
        el("div", { class: "actions" }, el("button", { type: "button", id: "dismiss-key", text: t("keys.dismiss"), onclick: function () {
          shownKey = null;
          render();
        } }))));
    }

    // The create form.
    var name = el("input", { type: "text", name: "name", maxlength: "100", placeholder: t("keys.name_placeholder") });
    var chips = SCOPES.map(function (scope) {
      var box = el("input", { type: "checkbox", name: "scope", value: scope, checked: true, id: "scope-" + scope });
      return el("label", { class: "chip", for: "scope-" + scope }, box, el("span", { text: scope }));
    });
    var expiry = el("select", { name: "expiry" },
      el("option", { value: "1", text: t("keys.days_1") }),
      el("option", { value: "7", text: t("keys.days_7") }),
      el("option", { value: "30", selected: true, text: t("keys.days_30") }),
      el("option", { value: "90", text: t("keys.days_90") }),
      el("option", { value: "permanent", text: t("keys.permanent") }));
    var warning = el("p", { class: "warning", id: "permanent-warning", role: "status", hidden: true, text: t("keys.permanent_warning") });
    expiry.addEventListener("change", function () { warning.hidden = expiry.value !== "permanent"; });
    var create = el("button", { type: "submit", class: "primary", id: "create-key", text: t("keys.create") });
    var form = el("form", { class: "card", id: "create-key-form", onsubmit: function (event) {
      event.preventDefault();
      var scopes = chips.map(function (chip) { return chip.querySelector("input"); })
        .filter(function (box) { return box.checked; })
        .map(function (box) { return box.value; });
      if (scopes.length === 0) {
        showMessage(t("keys.no_scope"), "error");
        return;
      }
      var body = { name: name.value.trim(), scopes: scopes };
      if (expiry.value !== "permanent") body.expires_in_days = Number(expiry.value);
      create.disabled = true;
      api("POST", "/api/apikey/create", body).then(function (json) {
        shownKey = json.data.api_key;
        showMessage(t("keys.created"), "ok");
        render();
        var shown = document.getElementById("new-key");
        if (shown) shown.scrollIntoView({ block: "nearest" });
      }).catch(reportError).then(function () { create.disabled = false; });
    } },
      el("h2", { text: t("keys.create_title") }),
      field("key-name", "keys.name", name),
      el("fieldset", { class: "chips" }, el("legend", { text: t("keys.scopes") }), ...chips),
      field("key-expiry", "keys.expiry", expiry),
      warning,
      el("div", { class: "actions" }, create));
    view.appendChild(form);

    // The list.
    var list = el("section", { class: "card", "aria-labelledby": "keys-list-title" },
      el("h2", { id: "keys-list-title", text: t("keys.list_title") }),
      el("p", { class: "muted", text: t("common.loading") }));
    view.appendChild(list);
    api("GET", "/api/apikey/list").then(function (json) {
      list.replaceChildren(el("h2", { id: "keys-list-title", text: t("keys.list_title") }), keysTable(json.data || []));
    }).catch(function (error) {
      list.replaceChildren(el("h2", { id: "keys-list-title", text: t("keys.list_title") }));
      reportError(error);
    });
  }

  function keysTable(keys) {
    if (keys.length === 0) return el("p", { class: "muted", text: t("keys.empty") });
    var head = el("tr", {}, ...["name", "prefix", "scopes", "status", "last_used", "created", "actions"].map(function (col) {
      return el("th", { scope: "col", text: t("keys.col_" + col) });
    }));
    var rows = keys.map(function (key) {
      var status = keyStatus(key);
      var actions = el("td", { class: "row-actions" });
      if (status === "active") {
        actions.appendChild(el("button", { type: "button", class: "revoke", text: t("keys.revoke"), onclick: function () {
          if (!window.confirm(t("keys.confirm_revoke", { name: key.name }))) return;
          api("POST", "/api/apikey/revoke", { key_id: key.key_id }).then(function () {
            showMessage(t("keys.revoked"), "ok");
            render();
          }).catch(reportError);
        } }));
      }
      actions.appendChild(el("button", { type: "button", class: "danger delete", text: t("keys.delete"), onclick: function () {
        if (!window.confirm(t("keys.confirm_delete", { name: key.name }))) return;
        api("POST", "/api/apikey/delete", { key_id: key.key_id }).then(function () {
          showMessage(t("keys.deleted"), "ok");
          render();
        }).catch(reportError);
      } }));
      return el("tr", { "data-key-id": key.key_id },
        el("td", { "data-label": t("keys.col_name"), title: key.name }, el("span", { class: "clip", text: key.name })),
        el("td", { "data-label": t("keys.col_prefix") }, el("code", { text: key.key_prefix })),
        el("td", { "data-label": t("keys.col_scopes"), text: (key.scopes || []).join(", ") }),
        el("td", { "data-label": t("keys.col_status") },
          el("span", { class: "status status-" + status, text: t("keys.status_" + status) })),
        el("td", { "data-label": t("keys.col_last_used"), text: formatTime(key.last_used_at) || t("keys.never") }),
        el("td", { "data-label": t("keys.col_created"), text: formatTime(key.created_at) || t("common.none") }),
        actions);
    });
    return el("div", { class: "table-wrap" },
      el("table", { id: "keys-table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  }

  function botsPage(view) {
    var body = el("div", {}, el("p", { class: "muted", text: t("common.loading") }));
    var load = function () {
      api("GET", "/api/platform/status").then(function (json) {
        var bots = (json.data && json.data.bots) || [];
        if (bots.length === 0) {
          body.replaceChildren(el("p", { class: "muted", text: t("bots.empty") }));
          return;
        }
        var head = el("tr", {}, ...["id", "type", "enabled", "running", "error", "restarts"].map(function (col) {
          return el("th", { scope: "col", text: t("bots.col_" + col) });
        }));
        var rows = bots.map(function (bot) {
          return el("tr", {},
            el("td", { "data-label": t("bots.col_id"), text: String(bot.id) }),
            el("td", { "data-label": t("bots.col_type"), text: String(bot.type) }),
            el("td", { "data-label": t("bots.col_enabled"), text: t(bot.enabled ? "common.yes" : "common.no") }),
            el("td", { "data-label": t("bots.col_running") },
              el("span", { class: "status " + (bot.running ? "status-active" : "status-revoked"),
                text: t(bot.running ? "bots.running" : "bots.stopped") })),
            el("td", { "data-label": t("bots.col_error"), class: "wrap", text: bot.last_error ? String(bot.last_error) : t("common.none") }),
            el("td", { "data-label": t("bots.col_restarts"), text: String(bot.restarts || 0) }));
        });
        body.replaceChildren(el("div", { class: "table-wrap" },
          el("table", { id: "bots-table" }, el("thead", {}, head), el("tbody", {}, ...rows))));
      }).catch(reportError);
    };
    view.appendChild(el("h1", { text: t("bots.title") }));
    view.appendChild(el("p", { class: "muted", text: t("bots.intro") }));
    view.appendChild(el("section", { class: "card" },
      el("div", { class: "actions start" }, el("button", { type: "button", id: "refresh-bots", text: t("bots.refresh"), onclick: load })),
      body));
    load();
  }

  function accountPage(view) {
    var current = el("input", { type: "password", autocomplete: "current-password", required: true });
    var newName = el("input", { type: "text", autocomplete: "username" });
    var newPassword = el("input", { type: "password", autocomplete: "new-password", required: true });
    var confirmPassword = el("input", { type: "password", autocomplete: "new-password", required: true });
    var submit = el("button", { type: "submit", class: "primary", text: t("account.submit") });
    view.appendChild(el("h1", { text: t("account.title") }));
    view.appendChild(el("form", { class: "card narrow", id: "account-form", onsubmit: function (event) {
      event.preventDefault();
      if (!newPassword.value) { showMessage(t("account.empty"), "error"); return; }
      if (newPassword.value !== confirmPassword.value) { showMessage(t("account.mismatch"), "error"); return; }
      var body = {
        password: md5(current.value),
        new_password: md5(newPassword.value),
        confirm_password: md5(confirmPassword.value)
      };
      if (newName.value.trim()) body.new_username = newName.value.trim();
      submit.disabled = true;
      var username = body.new_username || tokenPayload(token()).username;
      api("POST", "/api/auth/account/edit", body).then(function () {
        // The change ends every token issued before it, this page's too:
        // sign in again with the new credentials.
        return api("POST", "/api/auth/login", { username: username, password: body.new_password });
      }).then(function (json) {
        sessionStorage.setItem(TOKEN_KEY, json.data.token);
        sessionStorage.setItem(HINT_KEY, "0");
        updateChrome();
        current.value = newPassword.value = confirmPassword.value = "";
        showMessage(t("account.saved"), "ok");
      }).catch(reportError).then(function () { submit.disabled = false; });
    } },
      el("p", { class: "muted", text: t("account.intro") }),
      field("account-current", "account.current", current),
      field("account-username", "account.new_username", newName),
      field("account-new", "account.new_password", newPassword),
      field("account-confirm", "account.confirm", confirmPassword),
      el("div", { class: "actions" }, submit)));
  }

  // ---- router ---------------------------------------------------------------

  var PAGES = { login: loginPage, keys: keysPage, bots: botsPage, account: accountPage };
  var currentRoute = null;
  // Cleanups registered by the page on screen (e.g. aborting a stream), run
  // before the next render.
  var leaveHooks = [];

  // What the pages in other files (docs.js, providers.js, chat.js) use.
  var helpers = {
    el: el, t: t, api: api, token: token, field: field, formatTime: formatTime,
    showMessage: showMessage, clearMessage: clearMessage, reportError: reportError,
    signOut: signOut, lang: function () { return lang; },
    onLeave: function (fn) { leaveHooks.push(fn); }
  };
  Object.keys(window.AstrbotPages || {}).forEach(function (name) {
    var page = window.AstrbotPages[name];
    PAGES[name] = function (view) { page(view, helpers); };
  });

  function route() {
    var name = location.hash.replace(/^#\/?/, "").split("?")[0];
    return PAGES[name] ? name : null;
  }

  function updateChrome() {
    var signedIn = !!token();
    document.getElementById("nav").hidden = !signedIn;
    document.getElementById("logout").hidden = !signedIn;
    document.getElementById("pwd-banner").hidden = !(signedIn && sessionStorage.getItem(HINT_KEY) === "1");
    document.querySelectorAll("#nav a[data-route]").forEach(function (link) {
      if (link.getAttribute("data-route") === currentRoute) {
        link.setAttribute("aria-current", "page");
      } else {
        link.removeAttribute("aria-current");
      }
    });
  }

  function render() {
    var name = route();
    var jwt = token();
    if (jwt && tokenExpired(jwt)) {
      signOut("login.expired");
      return;
    }
    if (!jwt && name !== "login") {
      location.replace("#/login");
      name = "login";
    } else if (jwt && (name === "login" || !name)) {
      location.replace("#/keys");
      name = "keys";
    }
    if (name !== currentRoute) {
      if (currentRoute !== null) clearMessage();
      if (name !== "keys") shownKey = null;
    }
    currentRoute = name;
    var hooks = leaveHooks;
    leaveHooks = [];
    hooks.forEach(function (fn) { try { fn(); } catch (e) { /* keep rendering */ } });
    applyStaticText();
    updateChrome();
    var view = document.getElementById("view");
    view.replaceChildren();
    view.setAttribute("data-page", name);
    document.title = t(name === "login" ? "login.title" : name + ".title") + " · AstrBot";
    PAGES[name](view);
  }

  document.getElementById("lang-toggle").addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode */ }
    render();
  });
  document.getElementById("logout").addEventListener("click", function () { signOut("login.logged_out"); });
  window.addEventListener("hashchange", render);

  window.astrbotMd5 = md5;
  render();
})();
