// The API docs page (#/docs): renders /api/v1/openapi.json into the page
// (no third-party renderer) with a small "try it" form per operation. Every
// value from the document goes into the DOM as text.
"use strict";
(function () {
  var METHODS = ["get", "post", "put", "patch", "delete"];
  var KEY_STORE = "astrbot.docs_key";

  // The scope an /api/v1 path needs (the server's rule), unless the
  // document says otherwise with x-required-scope / x-scope.
  function scopeOf(path, op) {
    if (op["x-required-scope"] || op["x-scope"]) return op["x-required-scope"] || op["x-scope"];
    if (!op.security || op.security.length === 0) return null;
    if (path.indexOf("/api/v1/chat") === 0) return "chat";
    if (path.indexOf("/api/v1/file") === 0) return "file";
    if (path.indexOf("/api/v1/im") === 0) return "im";
    if (path.indexOf("/api/v1/config") === 0) return "config";
    return null;
  }

  function resolve(doc, node, depth) {
    var seen = 0;
    while (node && node.$ref && seen++ < 10) {
      var parts = node.$ref.replace(/^#\//, "").split("/");
      var target = doc;
      parts.forEach(function (p) { target = target ? target[p] : undefined; });
      node = target ? Object.assign({ "x-ref-name": parts[parts.length - 1] }, target) : null;
    }
    return node || {};
  }

  function typeLabel(doc, schema) {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.oneOf || schema.anyOf) {
      return (schema.oneOf || schema.anyOf).map(function (s) { return typeLabel(doc, s); }).join(" | ");
    }
    if (schema.type === "array") return typeLabel(doc, schema.items) + "[]";
    var label = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "any");
    if (schema.format) label += " (" + schema.format + ")";
    if (schema.enum) label += " ∈ {" + schema.enum.join(", ") + "}";
    return label;
  }

  // A schema as a nested list of its properties; $refs followed a few levels.
  function schemaNode(doc, schema, h, depth) {
    var el = h.el, t = h.t;
    schema = resolve(doc, schema);
    var box = el("div", { class: "schema" });
    if (schema["x-ref-name"]) box.appendChild(el("div", { class: "schema-name" }, el("code", { text: schema["x-ref-name"] })));
    if (schema.description) box.appendChild(el("p", { class: "muted", text: schema.description }));
    var props = schema.properties || (schema.type === "array" && resolve(doc, schema.items).properties);
    if (!props) {
      box.appendChild(el("p", {}, el("code", { text: typeLabel(doc, schema) })));
      return box;
    }
    var required = schema.required || (schema.type === "array" ? resolve(doc, schema.items).required : []) || [];
    var list = el("ul", { class: "props" });
    Object.keys(props).forEach(function (name) {
      var prop = props[name];
      var item = el("li", {},
        el("code", { class: "prop-name", text: name }), " ",
        el("span", { class: "prop-type", text: typeLabel(doc, prop) }),
        required.indexOf(name) >= 0 ? el("span", { class: "required", text: t("docs.required") }) : null,
        prop.default !== undefined ? el("span", { class: "muted", text: " " + t("docs.default", { value: JSON.stringify(prop.default) }) }) : null,
        prop.description ? el("div", { class: "muted", text: prop.description }) : null);
      var inner = prop.$ref ? prop : (prop.type === "array" && prop.items && prop.items.$ref ? prop.items : null);
      if (inner && depth < 3) item.appendChild(schemaNode(doc, inner, h, depth + 1));
      if (prop.oneOf && depth < 3) {
        prop.oneOf.forEach(function (alt) {
          var target = alt.$ref ? alt : (alt.items && alt.items.$ref ? alt.items : null);
          if (target) item.appendChild(schemaNode(doc, target, h, depth + 1));
        });
      }
      list.appendChild(item);
    });
    box.appendChild(list);
    return box;
  }

  function pretty(value) {
    try { return JSON.stringify(value, null, 2); } catch (e) { return String(value); }
  }

  function tryIt(path, method, op, keyInput, h, index) {
    var el = h.el, t = h.t;
    var form = el("form", { class: "try-it", "data-op": method.toUpperCase() + " " + path });
    var paramInputs = [];
    (op.parameters || []).forEach(function (param, i) {
      if (param.in !== "query") return;
      var id = "try-" + index + "-p" + i;
      var input = el("input", { type: "text", id: id, name: param.name,
        value: param.schema && param.schema.default !== undefined ? String(param.schema.default) : null });
      paramInputs.push({ name: param.name, input: input });
      form.appendChild(el("div", { class: "field" }, el("label", { for: id, text: param.name }), input));
    });
    var content = (op.requestBody && op.requestBody.content) || {};
    var json = content["application/json"];
    var multipart = content["multipart/form-data"];
    var textarea = null, fileInput = null;
    if (json) {
      var examples = json.examples ? Object.keys(json.examples).map(function (k) { return json.examples[k].value; }) : [];
      if (json.example !== undefined) examples.unshift(json.example);
      textarea = el("textarea", { id: "try-" + index + "-body", class: "try-body", rows: "8", spellcheck: "false" });
      textarea.value = examples.length ? pretty(examples[0]) : "{}";
      form.appendChild(el("div", { class: "field wide" }, el("label", { for: textarea.id, text: t("docs.body") }), textarea));
    } else if (multipart) {
      fileInput = el("input", { type: "file", id: "try-" + index + "-file" });
      form.appendChild(el("div", { class: "field" }, el("label", { for: fileInput.id, text: t("docs.file") }), fileInput));
    }
    var send = el("button", { type: "submit", class: "primary try-send", text: t("docs.send") });
    var status = el("p", { class: "try-status", role: "status" });
    var output = el("pre", { class: "try-output", hidden: true });
    form.appendChild(el("div", { class: "actions start" }, send));
    form.appendChild(status);
    form.appendChild(output);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var query = paramInputs.filter(function (p) { return p.input.value !== ""; })
        .map(function (p) { return encodeURIComponent(p.name) + "=" + encodeURIComponent(p.input.value); }).join("&");
      var headers = { "Accept": "application/json, text/event-stream" };
      if (keyInput.value.trim()) headers["X-API-Key"] = keyInput.value.trim();
      var body;
      if (textarea) {
        try { JSON.parse(textarea.value); } catch (e) {
          status.textContent = t("docs.bad_json", { error: e.message });
          status.className = "try-status error";
          return;
        }
        headers["Content-Type"] = "application/json";
        body = textarea.value;
      } else if (fileInput) {
        body = new FormData();
        if (fileInput.files[0]) body.append("file", fileInput.files[0]);
      }
      send.disabled = true;
      status.textContent = t("docs.sending");
      status.className = "try-status";
      fetch(path + (query ? "?" + query : ""), { method: method.toUpperCase(), headers: headers, body: body })
        .then(function (response) {
          return response.text().then(function (text) {
            status.textContent = t("docs.status", { status: response.status + (response.statusText ? " " + response.statusText : "") });
            status.className = "try-status " + (response.ok ? "ok" : "error");
            status.setAttribute("data-status", String(response.status));
            var shown = text;
            if ((response.headers.get("content-type") || "").indexOf("json") >= 0) {
              try { shown = pretty(JSON.parse(text)); } catch (e) { /* raw */ }
            }
            output.textContent = shown;
            output.hidden = false;
          });
        })
        .catch(function () {
          status.textContent = t("error.network");
          status.className = "try-status error";
        })
        .then(function () { send.disabled = false; });
    });
    return el("details", { class: "try" }, el("summary", { text: t("docs.try_it") }), form);
  }

  function operation(doc, path, method, op, keyInput, h, index) {
    var el = h.el, t = h.t;
    var scope = scopeOf(path, op);
    var section = el("section", { class: "card op", id: "op-" + index, "data-path": path, "data-method": method });
    section.appendChild(el("h2", { class: "op-title" },
      el("span", { class: "method method-" + method, text: method.toUpperCase() }), " ",
      el("code", { text: path })));
    if (op.summary) section.appendChild(el("p", { class: "op-summary", text: op.summary }));
    if (op.description) section.appendChild(el("p", { class: "muted", text: op.description }));
    var security = (!op.security || op.security.length === 0)
      ? t("docs.no_auth")
      : t("docs.auth_key") + (scope ? " · " + t("docs.scope", { scope: scope }) : "");
    section.appendChild(el("p", { class: "op-security" }, el("strong", { text: t("docs.security") + ": " }), security));
    if (op.parameters && op.parameters.length) {
      section.appendChild(el("h3", { text: t("docs.parameters") }));
      section.appendChild(el("ul", { class: "props" }, ...op.parameters.map(function (raw) {
        var param = resolve(doc, raw);
        return el("li", {},
          el("code", { class: "prop-name", text: param.name }), " ",
          el("span", { class: "prop-type", text: (param.in || "") + " · " + typeLabel(doc, param.schema) }),
          param.required ? el("span", { class: "required", text: t("docs.required") }) : null,
          param.description ? el("div", { class: "muted", text: param.description }) : null);
      })));
    }
    var content = op.requestBody && op.requestBody.content;
    if (content) {
      section.appendChild(el("h3", { text: t("docs.request_body") }));
      Object.keys(content).forEach(function (type) {
        var media = content[type];
        section.appendChild(el("p", {}, el("code", { text: type })));
        if (media.schema) section.appendChild(schemaNode(doc, media.schema, h, 0));
        var examples = media.examples || {};
        Object.keys(examples).forEach(function (name) {
          section.appendChild(el("div", { class: "example" },
            el("div", { class: "muted", text: t("docs.example", { name: name }) }),
            el("pre", { class: "example-json", text: pretty(examples[name].value) })));
        });
        if (media.example !== undefined) section.appendChild(el("pre", { class: "example-json", text: pretty(media.example) }));
      });
    }
    if (op.responses) {
      section.appendChild(el("h3", { text: t("docs.responses") }));
      var list = el("ul", { class: "responses" });
      Object.keys(op.responses).forEach(function (code) {
        var response = resolve(doc, op.responses[code]);
        var item = el("li", {}, el("code", { class: "status-code", text: code }), " ", response.description || "");
        var media = response.content || {};
        Object.keys(media).forEach(function (type) {
          item.appendChild(el("div", { class: "muted" }, el("code", { text: type })));
          if (media[type].schema && code.charAt(0) === "2") item.appendChild(schemaNode(doc, media[type].schema, h, 1));
        });
        list.appendChild(item);
      });
      section.appendChild(list);
    }
    section.appendChild(tryIt(path, method, op, keyInput, h, index));
    return section;
  }

  function docsPage(view, h) {
    var el = h.el, t = h.t;
    view.appendChild(el("h1", { text: t("docs.title") }));
    view.appendChild(el("p", { class: "muted" }, t("docs.intro") + " ",
      el("a", { href: "/api/v1/openapi.json", target: "_blank", rel: "noopener", text: "openapi.json" })));
    var keyInput = el("input", { type: "password", id: "docs-api-key", autocomplete: "off", placeholder: t("docs.key_placeholder") });
    try { keyInput.value = sessionStorage.getItem(KEY_STORE) || ""; } catch (e) { /* ignore */ }
    keyInput.addEventListener("input", function () {
      try { sessionStorage.setItem(KEY_STORE, keyInput.value); } catch (e) { /* ignore */ }
    });
    view.appendChild(el("section", { class: "card" }, h.field("docs-api-key", "docs.key", keyInput),
      el("p", { class: "muted" }, t("docs.key_hint") + " ", el("a", { href: "#/keys", text: t("nav.keys") }))));
    var body = el("div", { id: "docs-ops" }, el("p", { class: "muted", text: t("common.loading") }));
    view.appendChild(body);
    fetch("/api/v1/openapi.json", { headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(t("error.generic", { status: response.status }));
        return response.json();
      }, function () { throw new Error(t("error.network")); })
      .then(function (doc) {
        var index = 0;
        var toc = el("ul", { class: "toc" });
        var ops = [];
        Object.keys(doc.paths || {}).forEach(function (path) {
          METHODS.forEach(function (method) {
            var op = doc.paths[path][method];
            if (!op) return;
            var section = operation(doc, path, method, op, keyInput, h, index);
            toc.appendChild(el("li", {}, el("a", { href: "#/docs", "data-target": "op-" + index, onclick: function (event) {
              event.preventDefault();
              section.setAttribute("tabindex", "-1");
              section.focus();
              section.scrollIntoView({ block: "start" });
            } }, el("span", { class: "method method-" + method, text: method.toUpperCase() }), " ", el("code", { text: path }),
              op.summary ? " — " + op.summary : "")));
            ops.push(section);
            index++;
          });
        });
        var info = doc.info || {};
        body.replaceChildren(
          el("section", { class: "card" },
            el("h2", { text: (info.title || "API") + (info.version ? " " + info.version : "") }),
            info.description ? el("p", { class: "muted", text: info.description }) : null,
            toc),
          ...ops);
      })
      .catch(function (error) {
        body.replaceChildren();
        h.reportError(error);
      });
  }

  window.AstrbotPages = window.AstrbotPages || {};
  window.AstrbotPages.docs = docsPage;
})();
