// Run by test/pack.sh inside the scratch project, where the packed @livehub/client is installed
// from its tarball like any dependency: nothing here reaches into the checkout's sources.
// - the README's example, type-checked with `tsc --strict` and run under Node 20 with `ws`;
// - CommonJS: `require("@livehub/client")` type-checks (a .cts file) and runs;
// - the same example as an ES module in Chromium, with the browser's own WebSocket, on a page
//   served from another origin.
// Environment: LIVEHUB_BIN (the server), HARNESS (clients/js/test/harness.mjs), README (the
// package's README.md), CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";

const here = import.meta.dirname;
const { startServer, waitFor } = await import(process.env.HARNESS);
const require = createRequire(import.meta.url);

/** The code block after `<!-- example -->` in the README: the example the README shows first. */
function readmeExample() {
  const readme = readFileSync(process.env.README, "utf8");
  const match = readme.match(/<!-- example[^>]*-->\s*```ts\n([\s\S]*?)```/);
  assert.ok(match, "the README marks its example with <!-- example -->");
  return match[1];
}

let server;
before(async () => {
  server = await startServer();
  // The example as the README shows it, pointed at this server instead of localhost:8080.
  const example = readmeExample();
  assert.match(example, /http:\/\/localhost:8080/);
  writeFileSync(path.join(here, "example.ts"), example.replaceAll("http://localhost:8080", server.url));
  writeFileSync(
    path.join(here, "require.cts"),
    [
      'import client = require("@livehub/client");',
      'import WebSocket = require("ws");',
      "const hub = new client.LiveHub(process.argv[2] ?? \"\", { WebSocket, transports: [\"websocket\"] });",
      "const sub = hub.subscribe<{ n: number }>(\"pack/cjs\");",
      "sub.on(\"message\", (m) => console.log(`cjs got ${m.data.n}`));",
      "sub.on(\"subscribed\", (info) => {",
      "  console.log(`cjs subscribed ${info.recovery}`);",
      "  hub.publish(\"pack/cjs\", { n: 7 }).then((ack) => console.log(`cjs ack ${ack.offset}`), (err) => console.log(`cjs failed ${err}`));",
      "});",
      "",
    ].join("\n"),
  );
});
after(async () => {
  await server?.stop();
});

test("the README's example type-checks under tsc --strict", () => {
  const run = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", here], { encoding: "utf8" });
  assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`);
});

/** Runs `file` with node until `lines` have all appeared on its stdout; kills it then. */
async function runUntil(args, lines, timeout = 15000) {
  const child = spawn(process.execPath, args, { cwd: here, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    await waitFor(() => lines.every((l) => l.test(output)), timeout, () => `${lines.join(", ")} in the output:\n${output}`);
  } finally {
    child.kill();
    await exited;
  }
  return output;
}

test("the README's example runs under Node 20 with ws", { timeout: 30000 }, async () => {
  assert.equal(process.versions.node.split(".")[0], "20", "this test is about Node 20, which has no global WebSocket");
  const output = await runUntil(["build/example.js"], [/published at offset \d+/, /reading 21\.5 \d+/, /status connected null/]);
  console.log(output.trim().replace(/^/gm, "# "));
});

test("CommonJS: require('@livehub/client') runs", { timeout: 30000 }, async () => {
  const output = await runUntil(["build/require.cjs", server.url], [/cjs subscribed not-needed/, /cjs got 7/, /cjs ack 1/]);
  console.log(output.trim().replace(/^/gm, "# "));
});

test("the README's example runs in Chromium as an ES module", { timeout: 60000 }, async () => {
  const { chromium } = await import("playwright-core");
  const dist = path.join(here, "node_modules/@livehub/client/dist");
  // The browser has its own WebSocket: the example without the `ws` lines.
  const script = readFileSync(path.join(here, "build/example.js"), "utf8")
    .split("\n")
    .filter((line) => !/from "ws"/.test(line))
    .join("\n")
    .replace("{ WebSocket }", "{}");
  assert.ok(!script.includes("WebSocket"), `the browser script still names ws:\n${script}`);
  const page = `<!doctype html><meta charset="utf-8"><title>pack test</title><link rel="icon" href="data:,">
<script type="importmap">{"imports":{"@livehub/client":"/client/index.js"}}</script>
<script type="module" src="/example.js"></script>`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  // The page and the package's files come from a static server of their own on loopback, as an
  // application's would: the example then talks to livehub cross-origin.
  const site = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const send = (type, body) => res.writeHead(200, { "content-type": type }).end(body);
    if (url.pathname === "/index.html") return send("text/html", page);
    if (url.pathname === "/example.js") return send("text/javascript", script);
    const file = path.join(dist, url.pathname.replace(/^\/client\//, ""));
    if (!url.pathname.startsWith("/client/") || !file.startsWith(dist + path.sep) || !existsSync(file)) {
      return res.writeHead(404).end();
    }
    send("text/javascript", readFileSync(file));
  });
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${site.address().port}`;
  try {
    const context = await browser.newContext();
    const tab = await context.newPage();
    const logs = [];
    tab.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
    tab.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await tab.goto(`${origin}/index.html`);
    await waitFor(() => logs.some((l) => /reading 21\.5 \d+/.test(l)) && logs.some((l) => /published at offset \d+/.test(l)), 15000, () => `the example's output in the console:\n${logs.join("\n")}`);
    assert.deepEqual(logs.filter((l) => /^(error|pageerror)/.test(l)), []);
    console.log(logs.join("\n").replace(/^/gm, "# "));
  } finally {
    await browser.close();
    await new Promise((resolve) => site.close(resolve));
  }
});
