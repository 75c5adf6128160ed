// Browser tests of the dashboard's API docs, providers and chat pages: the
// real server binary ($ASTRBOT_BIN) with the fake LLM (target/debug/fake-openai,
// built by `cargo build -p fake-openai`), driven through headless Chromium.
//   ASTRBOT_BIN=target/debug/astrbot-rs node --test tests/e2e/
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const harness = require("./harness");

const FAKE_BIN =
  process.env.FAKE_OPENAI_BIN || path.join(harness.REPO, "target", "debug", "fake-openai");
const MARKDOWN_ANSWER = 'Look: <img src=x onerror="window.__xss=1"> and **bold** text';
// A 1x1 PNG.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

let context = null;
let page = null;
let base = "";

async function screenshot(name) {
  await harness.screenshot(page, name);
}

async function jwt() {
  return page.evaluate(() => sessionStorage.getItem("astrbot.token"));
}

before(async () => {
  const binary = harness.serverBinary();
  assert.ok(fs.existsSync(FAKE_BIN), `${FAKE_BIN} does not exist; run cargo build -p fake-openai`);

  const echoPort = await harness.freePort();
  const echo = harness.start(FAKE_BIN, ["--port", String(echoPort), "--token-ms", "40"]);
  const mdPort = await harness.freePort();
  const md = harness.start(FAKE_BIN, [
    "--port", String(mdPort), "--token-ms", "10", "--text", MARKDOWN_ANSWER,
  ]);
  await harness.waitFor(echo, `http://127.0.0.1:${echoPort}/`, 20_000);
  await harness.waitFor(md, `http://127.0.0.1:${mdPort}/`, 20_000);

  const source = (id, fakePort) => ({
    id, type: "openai_chat_completion", provider_type: "chat_completion", enable: true,
    key: ["sk-test"], api_base: `http://127.0.0.1:${fakePort}/v1`, timeout: 30,
  });
  base = await harness.startServer(binary, {
    platform: [],
    provider_sources: [source("src", echoPort), source("src-md", mdPort)],
    provider: [
      { id: "fake", provider_source_id: "src", model: "fake-model", enable: true },
      { id: "fake-md", provider_source_id: "src-md", model: "fake-model", enable: true },
    ],
    provider_settings: { default_provider_id: "fake" },
  });
  ({ context, page } = await harness.launchBrowser({ width: 1280, height: 900 }));

  await page.goto(`${base}/#/login`);
  await page.fill("#login-username", "astrbot");
  await page.fill("#login-password", "astrbot");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#create-key-form");
});

after(async () => {
  await harness.cleanUp(context);
});

test("the API docs page renders the OpenAPI document and 'try it' works with a key", async () => {
  const created = await fetch(`${base}/api/apikey/create`, {
    method: "POST",
    headers: { Authorization: `Bearer ${await jwt()}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "docs key", scopes: ["im"], expires_in_days: 1 }),
  }).then((r) => r.json());
  assert.equal(created.status, "ok");

  await page.click("#keys-docs-link");
  await page.waitForSelector("section.op");
  for (const [method, p] of [
    ["post", "/api/v1/chat"], ["get", "/api/v1/chat/sessions"], ["get", "/api/v1/configs"],
    ["post", "/api/v1/file"], ["post", "/api/v1/im/message"], ["get", "/api/v1/im/bots"],
  ]) {
    assert.equal(await page.locator(`section.op[data-path="${p}"][data-method="${method}"]`).count(), 1, `${method} ${p}`);
  }
  const chat = page.locator('section.op[data-path="/api/v1/chat"]');
  const chatText = await chat.textContent();
  assert.match(chatText, /scope “chat”/);
  assert.match(chatText, /ChatSendRequest/);
  assert.match(chatText, /selected_provider/);
  assert.match(await chat.locator("pre.example-json").first().textContent(), /"message": "Hello"/);
  await screenshot("api-docs");

  await page.fill("#docs-api-key", created.data.api_key);
  const bots = page.locator('section.op[data-path="/api/v1/im/bots"]');
  await bots.locator("details.try summary").click();
  await bots.locator(".try-send").click();
  await bots.locator('.try-status[data-status="200"]').waitFor();
  assert.match(await bots.locator(".try-output").textContent(), /"status": "ok"/);
  // A scope the key lacks answers 403.
  const configs = page.locator('section.op[data-path="/api/v1/configs"]');
  await configs.locator("details.try summary").click();
  await configs.locator(".try-send").click();
  await configs.locator('.try-status[data-status="403"]').waitFor();
  await screenshot("api-docs-try-it");
});

test("the providers page lists configs and tests a provider", async () => {
  await page.click("#nav a[data-route=providers]");
  await page.waitForSelector("#config-files tbody tr");
  const row = page.locator('.config-providers tr[data-provider-id="fake"]').first();
  await row.waitFor();
  assert.match(await row.textContent(), /fake-model/);
  assert.match(await row.textContent(), /default/);
  await row.locator("button.test-provider").click();
  await row.locator('.check-result[data-status="available"]').waitFor();
  assert.match(await row.locator(".check-result").textContent(), /available · \d+ ms/);
  await screenshot("providers");
});

async function sendAndSample(text) {
  await page.fill("#chat-input", text);
  // Sample the streaming answer in the page every few milliseconds.
  const sampling = page.evaluate(() => new Promise((resolve) => {
    const seen = [];
    const started = Date.now();
    const timer = setInterval(() => {
      const answers = document.querySelectorAll("#chat-messages .msg-bot.streaming .answer");
      const answer = answers[answers.length - 1];
      if (answer) {
        const value = answer.textContent;
        if (seen[seen.length - 1] !== value) seen.push(value);
      }
      const done = document.querySelector("#chat-messages .msg-bot:last-child:not(.streaming)");
      if ((seen.length && done) || Date.now() - started > 10_000) {
        clearInterval(timer);
        resolve(seen);
      }
    }, 5);
  }));
  await page.press("#chat-input", "Enter");
  return sampling;
}

test("chat: the answer streams in token by token and survives a reload", async () => {
  await page.click("#nav a[data-route=chat]");
  await page.waitForSelector("#chat-form");
  await page.waitForSelector('#chat-provider option[value="fake"]', { state: "attached" });
  const seen = await sendAndSample("hello there");
  await page.waitForFunction(() => !document.querySelector("#chat-messages .streaming"));
  const final = await page.locator("#chat-messages .msg-bot .answer").last().textContent();
  assert.equal(final, "Echo: hello there");
  const partial = seen.filter((value) => value && value !== final && final.startsWith(value));
  assert.ok(partial.length >= 1, `seen partially before complete: ${JSON.stringify(seen)}`);
  await page.waitForSelector("#chat-sessions button.session.current");
  assert.match(await page.textContent("#chat-title"), /hello there/);
  await screenshot("chat");

  await page.reload();
  await page.waitForSelector("#chat-messages .msg-bot .answer");
  assert.equal(await page.locator("#chat-messages .msg-user").first().textContent(), "Youhello there");
  assert.equal(await page.locator("#chat-messages .msg-bot .answer").last().textContent(), "Echo: hello there");
  assert.equal(await page.locator("#chat-sessions button.session").count() >= 1, true);
});

test("chat: a new chat uses the default config and a session keeps its own", async () => {
  // Two extra configs, listed before the default as AstrBot lists them, and a
  // session bound to the second through the API.
  const api = (method, url, body) => page.evaluate(async ([method, url, body]) => {
    const response = await fetch(url, {
      method,
      headers: { Authorization: "Bearer " + sessionStorage.getItem("astrbot.token"), "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    return response.text();
  }, [method, url, body]);
  const created = [];
  for (const name of ["first extra", "second extra"]) {
    created.push(JSON.parse(await api("POST", "/api/config/abconf/new", { name })).data.conf_id);
  }
  await api("POST", "/api/chat/send", { message: "bind me", session_id: "bound-to-second", config_id: created[1] });
  const boundConfig = async (sessionId) =>
    JSON.parse(await api("GET", "/api/chat/history?session_id=" + encodeURIComponent(sessionId))).data.config_id;
  assert.equal(await boundConfig("bound-to-second"), created[1]);

  // The page lists configs as it opens.
  await page.click("#nav a[data-route=chat]");
  await page.reload();
  await page.click("#chat-new");
  await page.waitForSelector(`#chat-config option[value="${created[1]}"]`, { state: "attached" });
  assert.equal(await page.inputValue("#chat-config"), "default");
  await page.fill("#chat-input", "a new chat");
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => document.querySelector("#chat-messages .msg-bot:last-child:not(.streaming)"));
  const newSession = await page.evaluate(() => sessionStorage.getItem("astrbot.chat_session"));
  assert.equal(await boundConfig(newSession), "default");

  // Opening the bound session shows its config, and talking in it keeps it.
  await page.reload();
  await page.click('#chat-sessions [data-session-id="bound-to-second"]');
  await page.waitForFunction((id) => document.querySelector("#chat-config").value === id, created[1]);
  await page.fill("#chat-input", "still the second");
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#chat-messages .msg-bot:not(.streaming)").length >= 2);
  assert.equal(await boundConfig("bound-to-second"), created[1]);

  // Choosing another config in the page moves the session to it.
  await page.selectOption("#chat-config", "default");
  await page.fill("#chat-input", "now the default");
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#chat-messages .msg-bot:not(.streaming)").length >= 3);
  assert.equal(await boundConfig("bound-to-second"), "default");
});

test("chat: model output is rendered as safe Markdown", async () => {
  await page.click("#chat-new");
  await page.selectOption("#chat-provider", "fake-md");
  await page.fill("#chat-input", "show me markdown");
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#chat-messages .msg-bot").length === 1 &&
    !document.querySelector("#chat-messages .streaming"));
  const answer = page.locator("#chat-messages .msg-bot .answer").last();
  assert.equal(await answer.locator("strong").textContent(), "bold");
  assert.match(await answer.textContent(), /<img src=x onerror="window.__xss=1">/);
  assert.equal(await page.locator("#chat-messages img").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await screenshot("chat-markdown");
});

test("chat: an attached image is previewed, uploaded and sent as an image part", async () => {
  await page.click("#chat-new");
  await page.selectOption("#chat-provider", "fake");
  const file = path.join(harness.tempDir("astrbot-e2e-png-"), "dot.png");
  fs.writeFileSync(file, PNG);
  await page.setInputFiles("#chat-file", file);
  await page.waitForSelector("#chat-thumbs .thumb.uploaded img");
  await screenshot("chat-attachment-preview");
  await page.fill("#chat-input", "what is this");
  const request = page.waitForRequest((r) => r.url().endsWith("/api/chat/send"));
  await page.click("#chat-send");
  const body = JSON.parse((await request).postData());
  assert.ok(Array.isArray(body.message), "the message is sent as parts");
  assert.ok(body.message.some((p) => p.type === "image" && p.attachment_id), JSON.stringify(body));
  assert.ok(body.message.some((p) => p.type === "plain" && p.text === "what is this"));
  await page.waitForFunction(() => !document.querySelector("#chat-messages .streaming"));
  assert.equal(await page.locator("#chat-messages .msg-user img.chat-image").count(), 1);
  assert.match(await page.locator("#chat-messages .msg-bot .answer").last().textContent(), /what is this/);
  await page.waitForFunction(() => {
    const img = document.querySelector("#chat-messages .msg-user img.chat-image");
    return img && img.complete && img.naturalWidth === 1;
  });
  // After a reload the image comes from the server (get_attachment).
  await page.reload();
  await page.waitForSelector("#chat-messages .msg-user img.chat-image");
  await page.waitForFunction(() => {
    const img = document.querySelector("#chat-messages .msg-user img.chat-image");
    return img && img.complete && img.naturalWidth === 1;
  });
  await screenshot("chat-image");
});

test("the new pages switch to Chinese and fit a phone-width screen", async () => {
  await page.click("#lang-toggle");
  await page.waitForFunction(() => document.documentElement.lang === "zh-CN");
  assert.equal(await page.textContent("#chat-send"), "发送");
  assert.equal(await page.textContent("#nav a[data-route=providers]"), "模型提供商");
  await page.setViewportSize({ width: 390, height: 844 });
  for (const route of ["chat", "providers", "docs"]) {
    await page.click(`#nav a[data-route=${route}]`);
    await page.waitForSelector(`main[data-page=${route}]`);
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${route}: no horizontal scrolling (overflow ${overflow}px)`);
    await screenshot(`${route}-phone-zh`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.click("#lang-toggle");
  await page.waitForFunction(() => document.documentElement.lang === "en");
});
