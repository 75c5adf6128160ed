// A small Markdown renderer that builds DOM nodes. Model output only ever
// becomes text nodes and a few fixed elements (p, br, strong, em, code, pre,
// ul, ol, li, a with an http(s) href); never HTML.
"use strict";
(function () {
  var INLINE = [
    { kind: "code", re: /`([^`\n]+)`/ },
    { kind: "link", re: /\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/ },
    { kind: "url", re: /https?:\/\/[^\s<>()"'`]+[^\s<>()"'`.,;:!?]/ },
    { kind: "strong", re: /\*\*([^\n]+?)\*\*/ },
    { kind: "em", re: /\*([^\s*](?:[^*\n]*[^\s*])?)\*/ }
  ];

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = text;
    return a;
  }

  // Appends the inline Markdown of `text` (no newlines) to `parent`.
  function inline(text, parent) {
    while (text) {
      var best = null;
      INLINE.forEach(function (rule) {
        var match = rule.re.exec(text);
        if (match && (!best || match.index < best.match.index)) best = { rule: rule, match: match };
      });
      if (!best) {
        parent.appendChild(document.createTextNode(text));
        return;
      }
      var m = best.match;
      if (m.index > 0) parent.appendChild(document.createTextNode(text.slice(0, m.index)));
      var node;
      switch (best.rule.kind) {
        case "code": node = document.createElement("code"); node.textContent = m[1]; break;
        case "link": node = link(m[2], m[1]); break;
        case "url": node = link(m[0], m[0]); break;
        case "strong": node = document.createElement("strong"); inline(m[1], node); break;
        default: node = document.createElement("em"); inline(m[1], node); break;
      }
      parent.appendChild(node);
      text = text.slice(m.index + m[0].length);
    }
  }

  // Lines to inline content separated by <br>.
  function lines(list, parent) {
    list.forEach(function (line, i) {
      if (i > 0) parent.appendChild(document.createElement("br"));
      inline(line, parent);
    });
  }

  var BULLET = /^\s*[-*+]\s+(.*)$/;
  var NUMBER = /^\s*(\d+)[.)]\s+(.*)$/;
  var FENCE = /^\s*```/;

  // Renders `source` into a new <div class="md">.
  function render(source) {
    var root = document.createElement("div");
    root.className = "md";
    var all = String(source || "").replace(/\r\n?/g, "\n").split("\n");
    var i = 0;
    while (i < all.length) {
      var line = all[i];
      if (!line.trim()) { i++; continue; }
      if (FENCE.test(line)) {
        var lang = line.trim().slice(3).trim();
        var body = [];
        i++;
        while (i < all.length && !FENCE.test(all[i])) body.push(all[i++]);
        i++; // the closing fence (or the end while streaming)
        var pre = document.createElement("pre");
        var code = document.createElement("code");
        if (lang) code.setAttribute("data-lang", lang);
        code.textContent = body.join("\n");
        pre.appendChild(code);
        root.appendChild(pre);
        continue;
      }
      var bullet = BULLET.test(line), number = NUMBER.test(line);
      if (bullet || number) {
        var re = bullet ? BULLET : NUMBER;
        var listNode = document.createElement(bullet ? "ul" : "ol");
        if (number) {
          var start = Number(NUMBER.exec(line)[1]);
          if (start !== 1) listNode.setAttribute("start", String(start));
        }
        while (i < all.length && re.test(all[i])) {
          var m = re.exec(all[i]);
          var li = document.createElement("li");
          inline(bullet ? m[1] : m[2], li);
          listNode.appendChild(li);
          i++;
        }
        root.appendChild(listNode);
        continue;
      }
      var para = [];
      while (i < all.length && all[i].trim() && !FENCE.test(all[i]) &&
             !(para.length && (BULLET.test(all[i]) || NUMBER.test(all[i])))) {
        para.push(all[i++]);
      }
      var p = document.createElement("p");
      lines(para, p);
      root.appendChild(p);
    }
    return root;
  }

  window.AstrbotMarkdown = { render: render };
})();
