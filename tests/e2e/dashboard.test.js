// Browser tests of the dashboard: the real server binary ($ASTRBOT_BIN) on a
// temporary data root, driven through Debian's headless Chromium with
// playwright-core. Run from the repository root after `cargo build -p astrbot-rs`:
//   ASTRBOT_BIN=target/debug/astrbot-rs node --test tests/e2e/
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const harness = require("./harness");

const DEFAULT_PASSWORD = "astrbot";
const NEW_PASSWORD = "e2e-new-password-1";

let context = null;
let page = null;
let base = "";

async function screenshot(name) {
  await harness.screenshot(page, name);
}

/// Calls the developer API with a key, from Node (not the browser).
async function withKey(key, apiPath) {
  const response = await fetch(base + apiPath, { headers: { "X-API-Key": key } });
  return response.status;
}

async function adminGet(apiPath) {
  const jwt = await page.evaluate(() => sessionStorage.getItem("astrbot.token"));
  const response = await fetch(base + apiPath, { headers: { Authorization: `Bearer ${jwt}` } });
  return response.json();
}

/// Creates a one-day chat key named `name` through the admin API, as the
/// signed-in admin, and reloads the page to show it.
async function createKeyOutsideThePage(name) {
  const jwt = await page.evaluate(() => sessionStorage.getItem("astrbot.token"));
  const created = await fetch(`${base}/api/apikey/create`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name, scopes: ["chat"], expires_in_days: 1 }),
  }).then((r) => r.json());
  assert.equal(created.status, "ok");
  await page.reload();
  return created.data;
}

async function signIn(password) {
  await page.goto(`${base}/#/login`);
  await page.fill("#login-username", "astrbot");
  await page.fill("#login-password", password);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#create-key-form");
}

before(async () => {
  const binary = harness.serverBinary();
  base = await harness.startServer(binary, { platform: [], provider: [], provider_sources: [] });
  ({ context, page } = await harness.launchBrowser({ width: 1280, height: 860 }));
});

after(async () => {
  await harness.cleanUp(context);
});

test("the page and its assets are served with content types and caching", async () => {
  const index = await fetch(`${base}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /^text\/html/);
  assert.equal(index.headers.get("cache-control"), "no-cache");
  const html = await index.text();
  const script = html.match(/src="(\/dashboard\/app\.js\?v=[^"]+)"/);
  assert.ok(script, "the page links a versioned app.js");
  const asset = await fetch(base + script[1]);
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get("content-type"), /^text\/javascript/);
  assert.match(asset.headers.get("cache-control"), /max-age=31536000/);
  assert.equal((await fetch(`${base}/dashboard/missing.js`)).status, 404);
});

test("a wrong password is shown as a message; the right one signs in", async () => {
  await page.goto(`${base}/`);
  await page.waitForSelector("#login-form");
  await screenshot("login");
  await page.fill("#login-username", "astrbot");
  await page.fill("#login-password", "wrong");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#message:not([hidden])");
  assert.match(await page.textContent("#message"), /用户名或密码错误/);

  await signIn(DEFAULT_PASSWORD);
  assert.equal(await page.isVisible("#pwd-banner"), true, "the default-password banner shows");
  assert.equal(await page.isVisible("#logout"), true);
});

test("a key with no scope is refused in the page", async () => {
  for (const scope of ["chat", "config", "file", "im"]) await page.uncheck(`#scope-${scope}`);
  await page.click("#create-key");
  await page.waitForSelector("#message.error:not([hidden])");
  assert.match(await page.textContent("#message"), /at least one scope/i);
  assert.equal(await page.isVisible("#new-key"), false);
});

let plaintextKey = "";

test("create a chat+im key for 7 days, shown once, and use it from outside", async () => {
  await page.goto(`${base}/#/keys`);
  await page.reload();
  await page.waitForSelector("#create-key-form");
  for (const scope of ["chat", "config", "file", "im"]) {
    assert.equal(await page.isChecked(`#scope-${scope}`), true, `${scope} is selected by default`);
  }
  assert.equal(await page.inputValue("#key-expiry"), "30", "30 days by default");
  await page.fill("#key-name", "e2e key");
  await page.uncheck("#scope-config");
  await page.uncheck("#scope-file");
  await page.selectOption("#key-expiry", "7");
  await page.click("#create-key");
  await page.waitForSelector("#new-key-value");
  plaintextKey = (await page.textContent("#new-key-value")).trim();
  assert.ok(plaintextKey.length > 20, `a key is shown: ${plaintextKey}`);
  assert.match(await page.textContent("#new-key"), /will not be shown again/);
  assert.equal(await page.isVisible("#copy-key"), true);
  await page.waitForSelector("#keys-table tbody tr");
  await screenshot("api-keys-created");

  const row = page.locator("#keys-table tbody tr", { hasText: "e2e key" });
  assert.equal(await row.locator("td").nth(2).textContent(), "chat, im");
  assert.equal(await row.locator(".status").textContent(), "active");

  assert.equal(await withKey(plaintextKey, "/api/v1/im/bots"), 200);
  assert.equal(await withKey(plaintextKey, "/api/v1/configs"), 403);

  const listed = await adminGet("/api/apikey/list");
  const key = listed.data.find((k) => k.name === "e2e key");
  const days = (Date.parse(key.expires_at) - Date.now()) / 86_400_000;
  assert.ok(days > 6.9 && days <= 7, `expires in 7 days (got ${days})`);

  // Shown once: leaving the page forgets it.
  await page.click("#nav a[data-route=bots]");
  await page.waitForSelector("#refresh-bots");
  await page.click("#nav a[data-route=keys]");
  await page.waitForSelector("#create-key-form");
  assert.equal(await page.isVisible("#new-key"), false);
  assert.equal((await page.content()).includes(plaintextKey), false);
});

test("choosing a permanent key shows a warning", async () => {
  assert.equal(await page.isVisible("#permanent-warning"), false);
  await page.selectOption("#key-expiry", "permanent");
  assert.equal(await page.isVisible("#permanent-warning"), true);
  assert.match(await page.textContent("#permanent-warning"), /never expires/);
  await screenshot("api-keys-permanent-warning");
  await page.selectOption("#key-expiry", "30");
  assert.equal(await page.isVisible("#permanent-warning"), false);
});

test("revoking the key in the page makes it fail with 401", async () => {
  const row = page.locator("#keys-table tbody tr", { hasText: "e2e key" });
  let dialogText = "";
  page.once("dialog", (dialog) => { dialogText = dialog.message(); dialog.accept(); });
  await row.locator("button.revoke").click();
  await page.locator("#keys-table tbody tr", { hasText: "e2e key" }).locator(".status-revoked").waitFor();
  assert.match(dialogText, /e2e key/);
  assert.equal(await row.locator("button.revoke").count(), 0, "no revoke button on a revoked key");
  assert.equal(await withKey(plaintextKey, "/api/v1/im/bots"), 401);
  await screenshot("api-keys-revoked");

  // Declining the delete dialog keeps the key; accepting deletes it.
  page.once("dialog", (dialog) => dialog.dismiss());
  await row.locator("button.delete").click();
  assert.equal(await row.count(), 1);
  page.once("dialog", (dialog) => dialog.accept());
  await row.locator("button.delete").click();
  await page.waitForFunction(() => !document.body.textContent.includes("e2e key"));
});

test("values from the server are shown as text, never as HTML", async () => {
  const name = '<img src=x onerror="window.__xss=1">';
  await createKeyOutsideThePage(name);
  const cell = page.locator("#keys-table tbody tr td", { hasText: "<img" }).first();
  assert.equal(await cell.textContent(), name);
  assert.equal(await page.locator("#keys-table img").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
});

test("a very long key name leaves every row's buttons in view", async () => {
  const name = "L".repeat(20000);
  const created = await createKeyOutsideThePage(name);
  await page.waitForSelector(`#keys-table tr[data-key-id="${created.key_id}"]`);

  const width = await page.evaluate(() => window.innerWidth);
  const buttons = page.locator("#keys-table button.delete");
  for (let i = 0; i < await buttons.count(); i++) {
    const box = await buttons.nth(i).boundingBox();
    assert.ok(box && box.x + box.width <= width, `delete button ${i} at ${JSON.stringify(box)}`);
  }
  const cell = page.locator(`#keys-table tr[data-key-id="${created.key_id}"] td`).first();
  assert.equal(await cell.getAttribute("title"), name, "the whole name is the tooltip");
  await screenshot("api-keys-long-name");
});

test("the bots page lists the built-in webchat bot", async () => {
  await page.click("#nav a[data-route=bots]");
  await page.waitForSelector("#bots-table");
  const row = page.locator("#bots-table tbody tr", { hasText: "webchat" });
  assert.equal(await row.count(), 1);
  assert.match(await row.textContent(), /running/);
  await screenshot("bots");
});

test("the language switches to Chinese and is remembered", async () => {
  await page.click("#lang-toggle");
  await page.waitForFunction(() => document.documentElement.lang === "zh-CN");
  assert.equal(await page.textContent("main h1"), "机器人");
  assert.equal(await page.textContent("#nav a[data-route=keys]"), "API 密钥");
  await page.reload();
  await page.waitForSelector("#bots-table");
  assert.equal(await page.textContent("main h1"), "机器人", "remembered across reloads");
  assert.match(await page.textContent("#bots-table"), /运行中/);
  await screenshot("bots-zh");
  await page.click("#nav a[data-route=keys]");
  await page.waitForSelector("#create-key-form");
  assert.equal(await page.textContent("main h1"), "API 密钥");
  await screenshot("api-keys-zh");
  await page.click("#lang-toggle");
  await page.waitForFunction(() => document.documentElement.lang === "en");
  assert.equal(await page.textContent("main h1"), "API keys");
});

test("the keys page fits a phone-width screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForSelector("#keys-table");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  await screenshot("api-keys-phone");
  await page.setViewportSize({ width: 1280, height: 860 });
});

test("changing the default password clears the banner; log out and in again", async () => {
  await page.click("#pwd-banner a");
  await page.waitForSelector("#account-form");
  await screenshot("account");
  await page.fill("#account-current", DEFAULT_PASSWORD);
  await page.fill("#account-new", NEW_PASSWORD);
  await page.fill("#account-confirm", NEW_PASSWORD);
  await page.click("#account-form button[type=submit]");
  await page.waitForSelector("#message.ok:not([hidden])");
  assert.equal(await page.isVisible("#pwd-banner"), false);

  // The change ends the tokens issued before it; the page signed in again.
  await page.click("#nav a[data-route=keys]");
  await page.waitForSelector("#keys-table");
  assert.notEqual(await page.evaluate(() => location.hash), "#/login");

  await page.click("#logout");
  await page.waitForSelector("#login-form");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("astrbot.token")), null);
  await signIn(NEW_PASSWORD);
  assert.equal(await page.isVisible("#pwd-banner"), false, "no banner after the change");
});

test("an admin with a non-ASCII name changes the password and stays signed in", async () => {
  const changeAccount = async (current, next, name) => {
    await page.goto(`${base}/#/account`);
    await page.waitForSelector("#account-form");
    await page.fill("#account-current", current);
    await page.fill("#account-username", name || "");
    await page.fill("#account-new", next);
    await page.fill("#account-confirm", next);
    const before = await page.evaluate(() => sessionStorage.getItem("astrbot.token"));
    await page.click("#account-form button[type=submit]");
    // The page signs in again with the new credentials: a new token.
    await page.waitForFunction(
      (before) => sessionStorage.getItem("astrbot.token") !== before, before, { timeout: 8000 });
  };
  await changeAccount(NEW_PASSWORD, "second-password-2", "管理员");
  // Only the password this time: the page reads the name from its token.
  await changeAccount("second-password-2", "third-password-3");

  await page.goto(`${base}/#/keys`);
  await page.waitForSelector("#keys-table");
  assert.notEqual(await page.evaluate(() => location.hash), "#/login");
});
