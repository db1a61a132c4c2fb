// Helpers of the dashboard's browser tests: Debian's headless Chromium through playwright-core,
// pages with their console errors recorded, screenshots under $ARTIFACTS. The test script runs
// only `test/*.test.mjs`, so this file is not itself run as a test.

import { mkdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = process.env.ARTIFACTS ?? path.resolve(import.meta.dirname, "../../target/artifacts/dashboard");
mkdirSync(ARTIFACTS, { recursive: true });

// No sandbox as root, and none of Chromium's background connections, which a closed network
// refuses.
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

/** How long a test waits for something the issue says must happen promptly. */
export const PROMPT = 2000;
/** How long a test waits for a reconnect or a transport switch, which includes back-off. */
export const RECONNECT = 15000;

/** A phone's viewport (an iPhone 12 to 15 in portrait). */
export const PHONE = { width: 390, height: 844 };

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * Opens `url` in a fresh context of `browser`, with `storage` in its localStorage. Every console
 * error and uncaught exception is recorded in `errors`, which each test checks at its end.
 */
export async function open(browser, url, { viewport = { width: 1280, height: 900 }, colorScheme = "dark", isMobile = false, storage = {} } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, isMobile, hasTouch: isMobile });
  // Preferences the page finds stored (`storage`: key → JSON value), as if picked before.
  if (Object.keys(storage).length) {
    await context.addInitScript((items) => {
      for (const [key, value] of Object.entries(items)) localStorage.setItem(key, JSON.stringify(value));
    }, storage);
  }
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  await page.goto(url);
  return { page, errors, close: () => context.close() };
}

/**
 * The errors left once those Chromium logs by itself are taken out: connections a stopped server
 * refuses or drops (or a cut line breaks), and the 404 of a transport the server disabled.
 * Anything else is a bug.
 */
export function unexpected(errors) {
  const expected =
    /WebSocket connection to .* failed|Failed to load resource: (net::ERR_CONNECTION_REFUSED|net::ERR_EMPTY_RESPONSE|net::ERR_CONNECTION_RESET|net::ERR_INCOMPLETE_CHUNKED_ENCODING|net::ERR_SOCKET_NOT_CONNECTED|the server responded with a status of 404)/;
  return errors.filter((e) => !expected.test(e));
}

export async function screenshot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage });
}

/** Resolves once the page shows a connected client on `transport` (any transport if omitted). */
export async function connected(page, transport, timeout = RECONNECT) {
  await page.waitForSelector('#conn-state[data-state="connected"]', { timeout });
  if (transport !== undefined) {
    await page.waitForFunction((t) => document.querySelector("#conn-transport")?.textContent?.trim() === t, transport, { timeout });
  }
}

/** The number in attribute `name` of the first element matching `selector` (NaN if absent). */
export async function numberAt(page, selector, name) {
  return page.evaluate(([s, n]) => Number(document.querySelector(s)?.getAttribute(n) ?? Number.NaN), [selector, name]);
}

/** Waits for the next update of the CPU card (a new metrics/system publication applied). */
export async function cpuUpdates(page, timeout = PROMPT) {
  const before = (await numberAt(page, '[data-card="cpu"]', "data-updated")) || 0;
  await page.waitForFunction((b) => Number(document.querySelector('[data-card="cpu"]')?.getAttribute("data-updated")) > b, before, { timeout });
}

/**
 * A TCP proxy on 127.0.0.1:0 to 127.0.0.1:`targetPort`, which can cut the line: `cut()` drops
 * every connection and refuses new ones until `restore()`, as a network outage does while the
 * server stays up. Resolves with {url, cut(), restore(), close()}.
 */
export async function startLine(targetPort) {
  const sockets = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    const both = [client, upstream];
    const drop = () => {
      for (const socket of both) {
        socket.destroy();
        sockets.delete(socket);
      }
    };
    for (const socket of both) {
      sockets.add(socket);
      socket.on("error", drop);
      socket.on("close", drop);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      down = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    restore() {
      down = false;
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
