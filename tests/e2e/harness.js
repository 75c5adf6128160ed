// What every dashboard browser test needs: temp folders, free ports, child
// processes (the server, fake LLMs) that are always stopped, the server
// started on its own data root, and Debian's Chromium kept off the network.
"use strict";

const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const REPO = path.resolve(__dirname, "../..");
const SCREENSHOTS = path.join(REPO, "artifacts", "screenshots");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
// The probe's flags: without the background-networking ones Chromium keeps
// trying hosts this machine cannot reach.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const children = [];
const tempDirs = [];
let log = "";

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/// The astrbot-rs binary from $ASTRBOT_BIN, checked, with Chromium.
function serverBinary() {
  const bin = process.env.ASTRBOT_BIN;
  assert.ok(bin, "set ASTRBOT_BIN to the astrbot-rs binary (e.g. target/debug/astrbot-rs)");
  const binary = path.resolve(bin);
  assert.ok(fs.existsSync(binary), `ASTRBOT_BIN ${binary} does not exist; run cargo build -p astrbot-rs`);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing; apt-get install chromium`);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  return binary;
}

function start(bin, args) {
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "warn", NO_COLOR: "1" },
  });
  child.stdout.on("data", (chunk) => { log += chunk; });
  child.stderr.on("data", (chunk) => { log += chunk; });
  children.push(child);
  return child;
}

/// Waits until `url` answers, failing early if `child` exits.
async function waitFor(child, url, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: exited with ${child.exitCode}:\n${log}`);
    try {
      await fetch(url);
      return;
    } catch (error) {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer in time:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/// Starts astrbot-rs on a fresh data root whose config is `config` (the
/// dashboard port is added) and returns its base URL once it answers.
async function startServer(binary, config) {
  const root = tempDir("astrbot-e2e-root-");
  const port = await freePort();
  fs.mkdirSync(path.join(root, "data"));
  fs.writeFileSync(
    path.join(root, "data", "cmd_config.json"),
    JSON.stringify({ ...config, dashboard: { host: "127.0.0.1", port } }),
  );
  const server = start(binary, ["--root", root, "serve", "--host", "127.0.0.1", "--port", String(port)]);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(server, `${base}/`, 30_000);
  return base;
}

/// A Chromium with a fresh profile; page errors fail the test.
async function launchBrowser(viewport) {
  const context = await chromium.launchPersistentContext(tempDir("astrbot-e2e-chromium-"), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    locale: "en-US",
    viewport,
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (error) => { throw error; });
  return { context, page };
}

function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}
process.on("exit", killAll);

/// Closes the browser, stops every child (SIGTERM, then SIGKILL after 5 s)
/// and removes the temp folders.
async function cleanUp(context) {
  if (context) await context.close().catch(() => {});
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
  }
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

module.exports = {
  REPO, cleanUp, freePort, launchBrowser, screenshot, serverBinary, start, startServer, tempDir,
  waitFor,
};
