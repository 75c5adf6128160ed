// The chat page (#/chat): the admin's sessions, history, a streamed answer
// (fetch + ReadableStream, since EventSource cannot send the JWT), images
// attached with post_file, and provider/model/config selectors. Model text
// is rendered by markdown.js, which builds DOM nodes (never HTML).
"use strict";
(function () {
  var SESSION_KEY = "astrbot.chat_session";
  var PAGE_SIZE = 20;

  function attachmentUrl(id, jwt) {
    return "/api/chat/get_attachment?attachment_id=" + encodeURIComponent(id) + "&token=" + encodeURIComponent(jwt || "");
  }

  function firstWords(text, count) {
    var words = String(text || "").trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return "";
    var head = words.slice(0, count || 6).join(" ");
    return head.length > 40 ? head.slice(0, 40) + "…" : (words.length > (count || 6) ? head + "…" : head);
  }

  function partsText(parts) {
    if (typeof parts === "string") return parts;
    return (parts || []).filter(function (p) { return p && p.type === "plain"; })
      .map(function (p) { return p.text || ""; }).join("");
  }

  function chatPage(view, h) {
    var el = h.el, t = h.t;
    var state = {
      sessionId: sessionStorage.getItem(SESSION_KEY) || null,
      sessions: [], page: 0, total: 0,
      attachments: [], // {file, url, attachment_id, filename, promise}
      controller: null,
      alive: true
    };
    h.onLeave(function () {
      state.alive = false;
      if (state.controller) state.controller.abort();
      state.attachments.forEach(function (a) { URL.revokeObjectURL(a.url); });
    });

    // ---- layout --------------------------------------------------------
    var sessionList = el("ul", { id: "chat-sessions", class: "session-list" });
    var more = el("button", { type: "button", id: "chat-more", class: "ghost", hidden: true, text: t("chat.more") });
    var newChat = el("button", { type: "button", id: "chat-new", class: "primary", text: t("chat.new") });
    var title = el("h2", { id: "chat-title", class: "chat-title", text: t("chat.new_title") });
    var messages = el("div", { id: "chat-messages", class: "chat-messages", role: "log", "aria-live": "polite", tabindex: "0" });
    var configSelect = el("select", { id: "chat-config" });
    var providerSelect = el("select", { id: "chat-provider" }, el("option", { value: "", text: t("chat.provider_default") }));
    var modelInput = el("input", { type: "text", id: "chat-model", placeholder: t("chat.model_placeholder") });
    var input = el("textarea", { id: "chat-input", rows: "3", placeholder: t("chat.placeholder"), "aria-label": t("chat.input_label") });
    var fileInput = el("input", { type: "file", id: "chat-file", accept: "image/*", multiple: true, class: "visually-hidden", tabindex: "-1" });
    var attach = el("button", { type: "button", id: "chat-attach", text: t("chat.attach") });
    var thumbs = el("div", { id: "chat-thumbs", class: "thumbs" });
    var send = el("button", { type: "submit", id: "chat-send", class: "primary", text: t("chat.send") });
    var stop = el("button", { type: "button", id: "chat-stop", class: "danger", hidden: true, text: t("chat.stop") });

    var selectors = el("div", { class: "chat-selectors" },
      el("div", { class: "field" }, el("label", { for: "chat-config", text: t("chat.config") }), configSelect),
      el("div", { class: "field" }, el("label", { for: "chat-provider", text: t("chat.provider") }), providerSelect),
      el("div", { class: "field" }, el("label", { for: "chat-model", text: t("chat.model") }), modelInput));
    var form = el("form", { id: "chat-form", class: "chat-form" },
      thumbs,
      input,
      el("div", { class: "actions" }, fileInput, attach, el("span", { class: "spacer" }), stop, send),
      el("p", { class: "muted hint", text: t("chat.hint") }));
    view.appendChild(el("h1", { class: "visually-hidden", text: t("chat.title") }));
    view.appendChild(el("div", { class: "chat-layout" },
      el("aside", { class: "card chat-side", "aria-label": t("chat.sessions") },
        el("div", { class: "actions start" }, newChat),
        el("h2", { text: t("chat.sessions") }), sessionList, more),
      el("section", { class: "card chat-main", "aria-labelledby": "chat-title" },
        title, selectors, messages, form)));

    // ---- messages --------------------------------------------------------
    function imageNode(src, name) {
      return el("img", { class: "chat-image", src: src, alt: name || t("chat.image"), loading: "lazy" });
    }

    function messageNode(role) {
      var bubble = el("div", { class: "msg msg-" + role, "data-role": role });
      bubble.appendChild(el("div", { class: "msg-role", text: t(role === "user" ? "chat.you" : "chat.bot") }));
      return bubble;
    }

    function reasoningNode(text) {
      var body = el("div", { class: "reasoning-body", text: text });
      return el("details", { class: "reasoning" }, el("summary", { text: t("chat.reasoning") }), body);
    }

    function addUserMessage(parts, jwt) {
      var bubble = messageNode("user");
      var text = partsText(parts);
      if (text) bubble.appendChild(el("div", { class: "msg-text", text: text }));
      (Array.isArray(parts) ? parts : []).forEach(function (part) {
        if (part.type === "image") {
          bubble.appendChild(imageNode(part.preview || attachmentUrl(part.attachment_id, jwt), part.filename));
        }
      });
      messages.appendChild(bubble);
      return bubble;
    }

    function addBotMessage(content, jwt) {
      var bubble = messageNode("bot");
      if (content.reasoning) bubble.appendChild(reasoningNode(content.reasoning));
      var parts = Array.isArray(content.message) ? content.message : [{ type: "plain", text: String(content.message || "") }];
      var text = partsText(parts);
      var answer = el("div", { class: "msg-text answer" });
      answer.appendChild(window.AstrbotMarkdown.render(text));
      bubble.appendChild(answer);
      parts.forEach(function (part) {
        if (part.type === "image" && part.attachment_id) bubble.appendChild(imageNode(attachmentUrl(part.attachment_id, jwt), part.filename));
      });
      messages.appendChild(bubble);
      return bubble;
    }

    function scrollDown() { messages.scrollTop = messages.scrollHeight; }

    // ---- sessions --------------------------------------------------------
    function sessionLabel(session) {
      return session.display_name || firstWords(session.first_message || session.title || "") ||
        t("chat.untitled", { time: h.formatTime(session.created_at) || session.session_id.slice(0, 8) });
    }

    function drawSessions() {
      sessionList.replaceChildren(...state.sessions.map(function (session) {
        var current = session.session_id === state.sessionId;
        return el("li", {}, el("button", { type: "button", class: "session" + (current ? " current" : ""),
          "data-session-id": session.session_id, "aria-current": current ? "true" : null,
          onclick: function () { if (!state.controller) selectSession(session.session_id); } },
          el("span", { class: "session-name", text: sessionLabel(session) }),
          el("span", { class: "muted session-time", text: h.formatTime(session.updated_at || session.created_at) || "" })));
      }));
      if (state.sessions.length === 0) sessionList.appendChild(el("li", { class: "muted", text: t("chat.no_sessions") }));
      more.hidden = state.sessions.length >= state.total;
    }

    function loadSessions(reset) {
      var page = reset ? 1 : state.page + 1;
      return h.api("GET", "/api/chat/sessions?page=" + page + "&page_size=" + PAGE_SIZE).then(function (json) {
        if (!state.alive) return;
        var data = json.data || {};
        var got = data.sessions || [];
        if (reset) state.sessions = [];
        got.forEach(function (s) {
          if (!state.sessions.some(function (x) { return x.session_id === s.session_id; })) state.sessions.push(s);
        });
        state.page = page;
        state.total = typeof data.total === "number" ? data.total : state.sessions.length;
        state.newChatConfig = data.new_session_config_id || "default";
        if (!state.sessionId && !config.changed) showConfig(state.newChatConfig);
        drawSessions();
        updateTitle();
      }).catch(h.reportError);
    }

    var firstUserText = "";
    function updateTitle() {
      if (!state.sessionId) { title.textContent = t("chat.new_title"); return; }
      var session = state.sessions.find(function (s) { return s.session_id === state.sessionId; });
      title.textContent = (session && session.display_name) || firstWords(firstUserText) ||
        (session ? sessionLabel(session) : t("chat.new_title"));
    }

    function selectSession(id) {
      state.sessionId = id;
      firstUserText = "";
      if (id) sessionStorage.setItem(SESSION_KEY, id); else sessionStorage.removeItem(SESSION_KEY);
      messages.replaceChildren();
      drawSessions();
      updateTitle();
      if (!id) { showConfig(state.newChatConfig); input.focus(); return; }
      messages.appendChild(el("p", { class: "muted", text: t("common.loading") }));
      h.api("GET", "/api/chat/history?session_id=" + encodeURIComponent(id)).then(function (json) {
        if (!state.alive || state.sessionId !== id) return;
        showConfig(json.data && json.data.config_id);
        messages.replaceChildren();
        var jwt = h.token();
        ((json.data && json.data.history) || []).forEach(function (record) {
          var content = record.content || {};
          if (content.type === "user") {
            if (!firstUserText) firstUserText = partsText(content.message);
            addUserMessage(content.message, jwt);
          } else {
            addBotMessage(content, jwt);
          }
        });
        if (!messages.firstChild) messages.appendChild(el("p", { class: "muted empty", text: t("chat.empty") }));
        updateTitle();
        scrollDown();
      }).catch(function (error) {
        messages.replaceChildren();
        h.reportError(error);
      });
    }

    newChat.addEventListener("click", function () { if (!state.controller) selectSession(null); });
    more.addEventListener("click", function () { loadSessions(false); });

    // ---- selectors -------------------------------------------------------
    // The config shown is the open session's own (its history says which)
    // or, for a new chat, the default. It is sent with a message only once
    // changed here, so that opening a session never rebinds it.
    var config = { shown: "default", changed: false, listed: false };
    function showConfig(id) {
      config.shown = id || "default";
      config.changed = false;
      if (!config.listed) return;
      configSelect.value = config.shown;
      loadProviders();
    }

    function loadProviders() {
      var configId = configSelect.value || "default";
      return h.api("GET", "/api/config/providers?config_id=" + encodeURIComponent(configId)).then(function (json) {
        var data = json.data || {};
        providerSelect.replaceChildren(el("option", { value: "", text: t("chat.provider_default") }),
          ...(data.providers || []).map(function (p) {
            return el("option", { value: p.id, text: p.id + (p.model ? " · " + p.model : "") +
              (p.id === data.default_provider_id ? " (" + t("providers.default") + ")" : "") });
          }));
      }).catch(h.reportError);
    }
    h.api("GET", "/api/config/abconfs").then(function (json) {
      var configs = (json.data && json.data.info_list) || [];
      if (configs.length === 0) configs = [{ id: "default", name: "default" }];
      configSelect.replaceChildren(...configs.map(function (c) {
        return el("option", { value: c.id, text: c.name || c.id });
      }));
      config.listed = true;
      configSelect.value = config.shown;
      return loadProviders();
    }).catch(h.reportError);
    configSelect.addEventListener("change", function () {
      config.changed = true;
      loadProviders();
    });

    // ---- attachments -----------------------------------------------------
    function drawThumbs() {
      thumbs.replaceChildren(...state.attachments.map(function (a) {
        var remove = el("button", { type: "button", class: "thumb-remove", "aria-label": t("chat.remove", { name: a.file.name }), text: "×",
          onclick: function () {
            state.attachments = state.attachments.filter(function (x) { return x !== a; });
            URL.revokeObjectURL(a.url);
            drawThumbs();
          } });
        return el("figure", { class: "thumb" + (a.attachment_id ? " uploaded" : a.error ? " failed" : " uploading"),
          "data-attachment-id": a.attachment_id || null },
          el("img", { src: a.url, alt: a.file.name }), remove);
      }));
    }

    function upload(a) {
      var data = new FormData();
      data.append("file", a.file, a.file.name);
      a.promise = fetch("/api/chat/post_file", { method: "POST", headers: { Authorization: "Bearer " + h.token() }, body: data })
        .then(function (response) {
          return response.json().catch(function () { return null; }).then(function (json) {
            if (!json || json.status !== "ok") throw new Error((json && json.message) || t("error.generic", { status: response.status }));
            a.attachment_id = json.data.attachment_id;
            a.filename = json.data.filename || a.file.name;
          });
        }, function () { throw new Error(t("error.network")); })
        .catch(function (error) { a.error = error; h.showMessage(t("chat.upload_failed", { error: error.message }), "error"); })
        .then(function () { if (state.alive) drawThumbs(); });
    }

    attach.addEventListener("click", function () { fileInput.click(); });
    fileInput.addEventListener("change", function () {
      Array.prototype.forEach.call(fileInput.files, function (file) {
        if (file.type.indexOf("image/") !== 0) { h.showMessage(t("chat.only_images"), "error"); return; }
        var a = { file: file, url: URL.createObjectURL(file) };
        state.attachments.push(a);
        upload(a);
      });
      fileInput.value = "";
      drawThumbs();
    });

    // ---- sending ---------------------------------------------------------
    function setStreaming(on) {
      send.disabled = on;
      attach.disabled = on;
      stop.hidden = !on;
      newChat.disabled = on;
    }

    function sendMessage() {
      if (state.controller) return;
      var text = input.value.trim();
      var pending = state.attachments.slice();
      if (!text && pending.length === 0) return;
      setStreaming(true);
      Promise.all(pending.map(function (a) { return a.promise; })).then(function () {
        var ready = pending.filter(function (a) { return a.attachment_id; });
        if (ready.length !== pending.length) { setStreaming(false); return; }
        var parts = [];
        if (text) parts.push({ type: "plain", text: text });
        ready.forEach(function (a) { parts.push({ type: "image", attachment_id: a.attachment_id, filename: a.filename, preview: a.url }); });
        var body = {
          message: ready.length ? parts.map(function (p) {
            return p.type === "image" ? { type: "image", attachment_id: p.attachment_id } : p;
          }) : text,
          enable_streaming: true
        };
        if (config.changed) body.config_id = configSelect.value || "default";
        if (state.sessionId) body.session_id = state.sessionId;
        if (providerSelect.value) body.selected_provider = providerSelect.value;
        if (modelInput.value.trim()) body.selected_model = modelInput.value.trim();
        input.value = "";
        state.attachments = [];
        drawThumbs();
        var empty = messages.querySelector(".empty");
        if (empty) empty.remove();
        if (!firstUserText) { firstUserText = text; updateTitle(); }
        addUserMessage(ready.length ? parts : text, h.token());
        stream(body);
      });
    }

    function stream(body) {
      var bubble = messageNode("bot");
      bubble.classList.add("streaming");
      var reasoning = reasoningNode("");
      reasoning.hidden = true;
      var answer = el("div", { class: "msg-text answer", "aria-busy": "true" });
      var cursor = el("span", { class: "typing", "aria-hidden": "true" });
      bubble.appendChild(reasoning);
      bubble.appendChild(answer);
      bubble.appendChild(cursor);
      messages.appendChild(bubble);
      scrollDown();
      var text = "", thinking = "", isNew = !state.sessionId;
      function draw() {
        answer.replaceChildren(window.AstrbotMarkdown.render(text));
        if (thinking) {
          reasoning.hidden = false;
          reasoning.querySelector(".reasoning-body").textContent = thinking;
        }
        var nearBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
        if (nearBottom) scrollDown();
      }
      function handle(event) {
        switch (event.type) {
          case "session_id":
            if (event.session_id && !state.sessionId) {
              state.sessionId = event.session_id;
              sessionStorage.setItem(SESSION_KEY, event.session_id);
            }
            break;
          case "plain":
            if (event.chain_type === "reasoning") thinking += String(event.data || "");
            else if (event.streaming === false && event.chain_type !== "tool_call") text = String(event.data || "");
            else if (event.chain_type === "tool_call" || event.chain_type === "tool_call_result") {
              bubble.insertBefore(el("details", { class: "tool-call" }, el("summary", { text: t("chat.tool_call") }),
                el("pre", { text: typeof event.data === "string" ? event.data : JSON.stringify(event.data, null, 2) })), answer);
            } else text += String(event.data || "");
            draw();
            break;
          case "complete":
            if (typeof event.data === "string" && event.data) text = event.data;
            if (typeof event.reasoning === "string" && event.reasoning) thinking = event.reasoning;
            draw();
            break;
          case "error":
            bubble.appendChild(el("p", { class: "error-text", text: String(event.data || event.message || t("chat.failed")) }));
            break;
          default:
            break;
        }
      }
      var controller = new AbortController();
      state.controller = controller;
      var finish = function () {
        bubble.classList.remove("streaming");
        answer.removeAttribute("aria-busy");
        cursor.remove();
        if (state.controller === controller) state.controller = null;
        if (!state.alive) return;
        setStreaming(false);
        if (isNew || state.sessionId) loadSessions(true);
        input.focus();
      };
      fetch("/api/chat/send", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "Authorization": "Bearer " + h.token() },
        body: JSON.stringify(body),
        signal: controller.signal
      }).then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (response.status === 401) { h.signOut("login.expired"); return; }
        if (type.indexOf("text/event-stream") < 0 || !response.body) {
          return response.json().catch(function () { return null; }).then(function (json) {
            throw new Error((json && json.message) || t("error.generic", { status: response.status }));
          });
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) buffer += decoder.decode() + "\n\n";
            else buffer += decoder.decode(chunk.value, { stream: true });
            buffer = buffer.replace(/\r\n/g, "\n");
            var cut;
            while ((cut = buffer.indexOf("\n\n")) >= 0) {
              var block = buffer.slice(0, cut);
              buffer = buffer.slice(cut + 2);
              var data = block.split("\n").filter(function (line) { return line.indexOf("data:") === 0; })
                .map(function (line) { return line.slice(5).replace(/^ /, ""); }).join("\n");
              if (!data) continue;
              try { handle(JSON.parse(data)); } catch (e) { /* not JSON: ignore */ }
            }
            if (!chunk.done) return pump();
          });
        }
        return pump();
      }).catch(function (error) {
        if (error && error.name === "AbortError") {
          bubble.appendChild(el("p", { class: "muted stopped", text: t("chat.stopped") }));
        } else {
          bubble.appendChild(el("p", { class: "error-text", text: error.message || t("chat.failed") }));
          if (state.alive) h.showMessage(error.message || t("chat.failed"), "error");
        }
      }).then(finish);
    }

    stop.addEventListener("click", function () { if (state.controller) state.controller.abort(); });
    form.addEventListener("submit", function (event) { event.preventDefault(); sendMessage(); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendMessage();
      }
    });

    loadSessions(true);
    selectSession(state.sessionId);
  }

  window.AstrbotPages = window.AstrbotPages || {};
  window.AstrbotPages.chat = chatPage;
})();
