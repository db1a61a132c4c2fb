// End-to-end tests of the dashboard in Debian's headless Chromium (driven by playwright-core)
// against the real livehub binary with its built-in sources: the page loads cleanly, cards and
// charts update and open filled from history, drawing pauses while hidden, the transport
// selector, fallback when WebSocket is disabled, a server restart, the markets, transit and sensors pages. Every page is saved as a
// screenshot under $ARTIFACTS.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

import { execFileSync } from "node:child_process";

import { LIVEHUB_BIN, startServer, waitFor } from "../../clients/js/test/harness.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.ARTIFACTS ?? path.resolve(import.meta.dirname, "../../target/artifacts/dashboard");
mkdirSync(ARTIFACTS, { recursive: true });

// As the machine notes say: no sandbox as root, and none of Chromium's background connections,
// which this machine's closed network refuses.
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
const PROMPT = 2000;
/** How long a test waits for a reconnect or a transport switch, which includes back-off. */
const RECONNECT = 15000;

// Alerts every second instead of every 20, so that the sensors page shows some during a test.
const configDir = mkdtempSync(path.join(tmpdir(), "livehub-dashboard-"));
const CONFIG = path.join(configDir, "livehub.toml");
writeFileSync(CONFIG, "[sources.weather]\nalert_every_secs = 1\ninterval_ms = 500\n");

// Access control on, for the test of the page with a token.
const SECRET = "dashboard-test-secret";
const AUTH_CONFIG = path.join(configDir, "auth.toml");
writeFileSync(AUTH_CONFIG, `[auth.jwt]\nhmac_secret = "${SECRET}"\n`);

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});
after(async () => {
  await browser?.close();
});

/**
 * Opens `url` in a fresh browser context. Every console error and uncaught exception is recorded
 * in `errors`, which each test checks at its end.
 */
async function open(url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  await page.goto(url);
  return { page, errors, close: () => context.close() };
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Resolves once the page shows a connected client on `transport` (any transport if omitted). */
async function connected(page, transport, timeout = RECONNECT) {
  await page.waitForSelector('#conn-state[data-state="connected"]', { timeout });
  if (transport !== undefined) {
    await page.waitForFunction(
      (t) => document.querySelector("#conn-transport")?.textContent?.trim() === t,
      transport,
      { timeout },
    );
  }
}

/** The number in attribute `name` of the first element matching `selector` (NaN if absent). */
async function numberAt(page, selector, name) {
  return page.evaluate(
    ([s, n]) => Number(document.querySelector(s)?.getAttribute(n) ?? Number.NaN),
    [selector, name],
  );
}

/** Resolves once `selector`'s numeric attribute `name` is above `than`; returns the new value. */
async function grows(page, selector, name, than, timeout) {
  await page.waitForFunction(
    ([s, n, t]) => Number(document.querySelector(s)?.getAttribute(n) ?? Number.NaN) > t,
    [selector, name, than],
    { timeout },
  );
  return numberAt(page, selector, name);
}

/** Waits for the next update of the CPU card (a new metrics/system publication applied). */
async function cpuUpdates(page, timeout = PROMPT) {
  const before = (await numberAt(page, '[data-card="cpu"]', "data-updated")) || 0;
  return grows(page, '[data-card="cpu"]', "data-updated", before, timeout);
}

async function presence(url) {
  const response = await fetch(`${url}/api/presence`, { signal: AbortSignal.timeout(5000) });
  return response.json();
}

describe("the dashboard", () => {
  let server;
  before(async () => {
    server = await startServer(["--config", CONFIG]);
  });
  after(async () => {
    await server.stop();
  });

  test("loads with no console errors, and its cards and charts update within two seconds", async () => {
    const { page, errors, close } = await open(`${server.url}/`);
    try {
      await connected(page);
      await page.waitForSelector('[data-card="cpu"][data-updated]', { timeout: PROMPT });
      await cpuUpdates(page);
      for (const card of ["cpu", "memory", "swap", "load", "network", "disk", "uptime", "processes", "livehub"]) {
        const text = await page.textContent(`[data-card="${card}"] .value`);
        assert.ok(text && text.trim() !== "", `card ${card} shows a value`);
      }
      for (const chart of ["cpu", "memory", "network", "disk"]) {
        const points = await numberAt(page, `[data-chart="${chart}"]`, "data-points");
        assert.ok(points >= 1, `chart ${chart} has points (${points})`);
        assert.ok(await page.$(`[data-chart="${chart}"] canvas`), `chart ${chart} is drawn by uPlot`);
        // Live samples fold into buckets once their step is over, so the points do not always
        // grow: the samples taken do.
        const live = await numberAt(page, `[data-chart="${chart}"]`, "data-live");
        await grows(page, `[data-chart="${chart}"]`, "data-live", live, PROMPT);
      }
      await page.waitForFunction(() => Number(document.querySelector("#clients-count")?.textContent) >= 1, null, {
        timeout: PROMPT,
      });
      assert.ok((await page.$$("#activity li")).length > 0, "the activity feed says what happened");
      await screenshot(page, "overview");
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("charts open filled from history, not empty", async () => {
    // The server has published metrics/system once a second since the suite started; make sure
    // a few are in history, then open a fresh page on the 5 min range (1 s buckets, so three
    // publications are three rows) and count the rows that did not come from live samples.
    await waitFor(async () => {
      const response = await fetch(`${server.url}/api/channels/metrics/system/history?limit=10`);
      return (await response.json()).publications.length >= 3;
    }, 10000, "three metrics/system publications in history");
    const { page, errors, close } = await open(`${server.url}/`);
    try {
      await page.evaluate(() => localStorage.setItem("livehub.dashboard.range.overview", JSON.stringify("5m")));
      await page.reload();
      await page.waitForSelector('[data-chart="cpu"][data-range="5m"]', { timeout: RECONNECT });
      // Each live sample adds at most one row (`data-live` counts them), so rows beyond that
      // count came from the series answer. The wait covers a page load on a busy machine; it
      // is not the promptness the first test measures.
      await page.waitForFunction(
        () => {
          const chart = document.querySelector('[data-chart="cpu"]');
          return chart && Number(chart.dataset.points) - Number(chart.dataset.live) >= 3;
        },
        null,
        { timeout: RECONNECT },
      );
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("the transport selector switches transport and data keeps flowing", async () => {
    const { page, errors, close } = await open(`${server.url}/`);
    try {
      await connected(page);
      for (const transport of ["sse", "long-polling", "polling", "websocket"]) {
        await page.selectOption("#transport-select", transport);
        await connected(page, transport);
        await cpuUpdates(page, RECONNECT);
        await screenshot(page, `overview-${transport}`);
      }
      await page.selectOption("#transport-select", "auto");
      await connected(page, "websocket");
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("drawing pauses while the tab is hidden and catches up when it shows again", async () => {
    const { page, errors, close } = await open(`${server.url}/`);
    const setVisibility = (state) =>
      page.evaluate((s) => {
        Object.defineProperty(document, "visibilityState", { value: s, configurable: true });
        Object.defineProperty(document, "hidden", { value: s === "hidden", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
      }, state);
    try {
      await connected(page);
      await cpuUpdates(page);
      await setVisibility("hidden");
      const frozen = await numberAt(page, '[data-card="cpu"]', "data-updated");
      // metrics/system publishes every second: three of them arrive while hidden.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.equal(await numberAt(page, '[data-card="cpu"]', "data-updated"), frozen, "nothing is drawn while hidden");
      await setVisibility("visible");
      const shown = await grows(page, '[data-card="cpu"]', "data-updated", frozen + 2000, PROMPT);
      assert.ok(shown > frozen, "the card caught up with what arrived while hidden");
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("the transport is kept in the URL", async () => {
    const { page, errors, close } = await open(`${server.url}/?transport=sse#/overview`);
    try {
      await connected(page, "sse");
      assert.equal(await page.inputValue("#transport-select"), "sse");
      await cpuUpdates(page);
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("markets: picking a symbol subscribes to it and shows its ticks; unpicking unsubscribes", async () => {
    const { page, errors, close } = await open(`${server.url}/#/markets`);
    try {
      await connected(page);
      await page.waitForSelector("input[data-symbol]", { timeout: PROMPT });
      const symbols = await page.$$eval("input[data-symbol]", (inputs) =>
        inputs.map((i) => ({ symbol: i.dataset.symbol, checked: i.checked })),
      );
      assert.equal(symbols.length, 12, "every symbol can be picked");
      const unpicked = symbols.find((s) => !s.checked) ?? symbols[0];
      if (unpicked.checked) await page.uncheck(`input[data-symbol="${unpicked.symbol}"]`);
      const row = `tr[data-symbol="${unpicked.symbol}"]`;
      assert.equal(await page.$(row), null, "no row before the symbol is picked");

      await page.check(`input[data-symbol="${unpicked.symbol}"]`);
      await page.waitForSelector(row, { timeout: PROMPT });
      await grows(page, row, "data-ticks", 0, 5000);
      const price = await page.textContent(`${row} .price`);
      assert.match(price ?? "", /\d/, "the row shows a price");
      await waitFor(
        async () => ((await presence(server.url)).channels[`stocks/${unpicked.symbol}`] ?? 0) >= 1,
        5000,
        "the server sees the subscription",
      );
      await screenshot(page, "markets");

      await page.uncheck(`input[data-symbol="${unpicked.symbol}"]`);
      await page.waitForSelector(row, { state: "detached", timeout: PROMPT });
      await waitFor(
        async () => ((await presence(server.url)).channels[`stocks/${unpicked.symbol}`] ?? 0) === 0,
        5000,
        "the server sees the unsubscribe",
      );
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("transit: vehicles are drawn on the map and choosing routes subscribes to them", async () => {
    const { page, errors, close } = await open(`${server.url}/#/transit`);
    try {
      await connected(page);
      await page.waitForSelector("svg#transit-map", { timeout: PROMPT });
      await page.waitForSelector("[data-vehicle]", { timeout: 5000 });
      const statuses = await page.$$eval("[data-vehicle]", (vs) => vs.map((v) => v.getAttribute("data-status")));
      for (const status of statuses) assert.ok(["on_route", "delayed", "out_of_service"].includes(status), status);

      const routes = await page.$$eval("input[data-route]", (inputs) =>
        inputs.map((i) => ({ route: i.dataset.route, checked: i.checked })),
      );
      assert.ok(routes.length >= 2, "several routes to choose from");
      const route = routes.find((r) => r.checked) ?? routes[0];
      if (!route.checked) await page.check(`input[data-route="${route.route}"]`);
      await page.waitForSelector(`[data-vehicle^="${route.route}-"]`, { timeout: 5000 });
      await screenshot(page, "transit");
      await page.uncheck(`input[data-route="${route.route}"]`);
      await page.waitForSelector(`[data-vehicle^="${route.route}-"]`, { state: "detached", timeout: PROMPT });
      await waitFor(
        async () => ((await presence(server.url)).channels[`transit/route/${route.route}`] ?? 0) === 0,
        5000,
        "the server sees the unsubscribe",
      );
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("sensors: the 10 Hz chart grows, stations update and alerts arrive", async () => {
    const { page, errors, close } = await open(`${server.url}/#/sensors`);
    try {
      await connected(page);
      await page.waitForSelector('[data-chart="sensor"] canvas', { timeout: PROMPT });
      const live = await numberAt(page, '[data-chart="sensor"]', "data-live");
      // A 10 Hz source: a second brings about ten more samples.
      await grows(page, '[data-chart="sensor"]', "data-live", live + 5, PROMPT);
      await page.waitForSelector("[data-station][data-updated]", { timeout: PROMPT });
      await page.waitForSelector("#alerts li[data-severity]", { timeout: 5000 });
      const severities = await page.$$eval("#alerts li", (lis) => lis.map((li) => li.dataset.severity));
      for (const severity of severities) assert.ok(["info", "warning", "danger"].includes(severity), severity);
      await screenshot(page, "sensors");
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });
});

describe("the dashboard when the server changes under it", () => {
  test("with WebSocket disabled on the server, the page falls back and says which transport it uses", async () => {
    const server = await startServer(["--disable", "websocket"]);
    const { page, errors, close } = await open(`${server.url}/`);
    try {
      await connected(page, "sse");
      await cpuUpdates(page, RECONNECT);
      await screenshot(page, "fallback-sse");
      // A refused WebSocket handshake is logged by Chromium itself as a console error; that one
      // is the point of this test, anything else is not.
      const unexpected = errors.filter((e) => !/WebSocket connection to .* failed/.test(e));
      assert.deepEqual(unexpected, []);
    } finally {
      await close();
      await server.stop();
    }
  });

  test("a server restarted mid-test: the page says so, reconnects by itself and data flows again", async () => {
    const server = await startServer([]);
    const { page, errors, close } = await open(`${server.url}/`);
    try {
      await connected(page, "websocket");
      await cpuUpdates(page);
      await server.restart();
      await page.waitForSelector('#conn-state:not([data-state="connected"])', { timeout: RECONNECT });
      await connected(page, "websocket");
      await cpuUpdates(page, RECONNECT);
      const feed = await page.$$eval("#activity li", (lis) => lis.map((li) => li.textContent ?? ""));
      assert.ok(feed.some((line) => /reconnect|disconnect|lost/i.test(line)), `the feed says so: ${feed.join(" | ")}`);
      await screenshot(page, "after-restart");
      // While the server was down, the page's own reconnect attempts fail; Chromium logs each
      // refused WebSocket as a console error. Nothing else may appear.
      const unexpected = errors.filter((e) => !/WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/.test(e));
      assert.deepEqual(unexpected, []);
    } finally {
      await close();
      await server.stop();
    }
  });
});

describe("the dashboard with access control on", () => {
  test("connects with the token from its URL, and says it is refused without one", async () => {
    const server = await startServer(["--config", AUTH_CONFIG]);
    const token = execFileSync(LIVEHUB_BIN, [
      "token", "--secret", SECRET, "--sub", "viewer", "--subscribe", "#", "--subscribe", "$sys/#", "--ttl", "600",
    ], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    const allowed = await open(`${server.url}/?token=${token}`);
    const refused = await open(`${server.url}/`);
    try {
      await connected(allowed.page, "websocket");
      await cpuUpdates(allowed.page, RECONNECT);
      assert.deepEqual(allowed.errors, []);

      await refused.page.waitForSelector('#conn-state[data-state="disconnected"]', { timeout: RECONNECT });
      await waitFor(
        async () => (await refused.page.$$eval("#activity li", (lis) => lis.map((li) => li.textContent ?? ""))).some((t) => /unauthori[sz]ed|credential/i.test(t)),
        RECONNECT,
        "the activity feed says why",
      );
      await screenshot(refused.page, "refused-without-token");
    } finally {
      await allowed.close();
      await refused.close();
      await server.stop();
    }
  });
});
