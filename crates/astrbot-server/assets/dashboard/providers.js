// The providers & configs page (#/providers): the config files, and for each
// the providers with a "Test" button (check_one: latency or the error).
"use strict";
(function () {
  function providersPage(view, h) {
    var el = h.el, t = h.t;
    view.appendChild(el("h1", { text: t("providers.title") }));
    view.appendChild(el("p", { class: "muted", text: t("providers.intro") }));
    var body = el("div", { id: "providers-body" }, el("p", { class: "muted", text: t("common.loading") }));
    view.appendChild(body);

    function testButton(provider, configId, result) {
      var button = el("button", { type: "button", class: "test-provider", text: t("providers.test") });
      button.addEventListener("click", function () {
        button.disabled = true;
        result.className = "check-result";
        result.textContent = t("providers.testing");
        h.api("GET", "/api/config/provider/check_one?id=" + encodeURIComponent(provider.id) +
          "&config_id=" + encodeURIComponent(configId)).then(function (json) {
          var data = json.data || {};
          if (data.status === "available") {
            result.className = "check-result status status-active";
            result.textContent = t("providers.available", { ms: data.latency_ms });
          } else {
            result.className = "check-result status status-revoked";
            result.textContent = t("providers.unavailable", { error: data.error || t("common.none") });
          }
          result.setAttribute("data-status", data.status || "unknown");
        }).catch(function (error) {
          result.className = "check-result status status-revoked";
          result.setAttribute("data-status", "error");
          result.textContent = error.message;
        }).then(function () { button.disabled = false; });
      });
      return button;
    }

    function providersTable(config, data) {
      var providers = data.providers || [];
      if (providers.length === 0) return el("p", { class: "muted", text: t("providers.empty") });
      var head = el("tr", {}, ...["id", "type", "model", "test"].map(function (col) {
        return el("th", { scope: "col", text: t("providers.col_" + col) });
      }));
      var rows = providers.map(function (provider) {
        var result = el("span", { class: "check-result", role: "status" });
        var isDefault = provider.id === data.default_provider_id;
        return el("tr", { "data-provider-id": provider.id },
          el("td", { "data-label": t("providers.col_id") }, el("code", { text: String(provider.id) }),
            isDefault ? el("span", { class: "status status-active default-mark", text: t("providers.default") }) : null),
          el("td", { "data-label": t("providers.col_type"), text: String(provider.type || "") }),
          el("td", { "data-label": t("providers.col_model"), class: "wrap", text: String(provider.model || t("common.none")) }),
          el("td", { "data-label": t("providers.col_test"), class: "row-actions" }, testButton(provider, config.id, result), result));
      });
      return el("div", { class: "table-wrap" },
        el("table", { class: "providers-table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
    }

    h.api("GET", "/api/config/abconfs").then(function (json) {
      var configs = (json.data && json.data.info_list) || [];
      var filesHead = el("tr", {}, ...["id", "name", "path"].map(function (col) {
        return el("th", { scope: "col", text: t("providers.cfg_" + col) });
      }));
      var files = el("section", { class: "card", "aria-labelledby": "config-files-title" },
        el("h2", { id: "config-files-title", text: t("providers.configs_title") }),
        el("div", { class: "table-wrap" }, el("table", { id: "config-files" }, el("thead", {}, filesHead),
          el("tbody", {}, ...configs.map(function (config) {
            return el("tr", {},
              el("td", { "data-label": t("providers.cfg_id") }, el("code", { text: String(config.id) })),
              el("td", { "data-label": t("providers.cfg_name"), text: String(config.name || "") }),
              el("td", { "data-label": t("providers.cfg_path"), class: "wrap", text: String(config.path || "") }));
          })))));
      var sections = configs.map(function (config) {
        var section = el("section", { class: "card config-providers", "data-config-id": config.id },
          el("h2", {}, t("providers.of_config") + " ", el("code", { text: String(config.name || config.id) })),
          el("p", { class: "muted", text: t("common.loading") }));
        h.api("GET", "/api/config/providers?config_id=" + encodeURIComponent(config.id)).then(function (json) {
          section.replaceChild(providersTable(config, json.data || {}), section.lastChild);
        }).catch(function (error) {
          section.replaceChild(el("p", { class: "error-text", text: error.message }), section.lastChild);
        });
        return section;
      });
      body.replaceChildren(files, ...sections);
    }).catch(function (error) {
      body.replaceChildren();
      h.reportError(error);
    });
  }

  window.AstrbotPages = window.AstrbotPages || {};
  window.AstrbotPages.providers = providersPage;
})();
