// The other families of transports in the dashboard, in Debian's headless Chromium against the
// real binary: the official SignalR client over each of its transports (and MessagePack) and
// MQTT.js over WebSocket, picked in the selector or the URL, loaded only when picked, named by the
// indicator, carrying live data and an HTTP publish; across a cut line SignalR recovers what was
// missed and MQTT refills from history; a family the server switched off falls back; and with
// access control on, the token in the page's URL reaches SignalR and MQTT.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { LIVEHUB_BIN, publishHttp, startServer, waitFor } from "../../clients/js/test/harness.mjs";
import { PROMPT, RECONNECT, connected, cpuUpdates, launch, open, screenshot, startLine, unexpected } from "./browser.mjs";

/** The transports of the other families, as the selector and `?transport=` name them. */
const SIGNALR = ["signalr-websockets", "signalr-websockets-msgpack", "signalr-sse", "signalr-long-polling"];
const REMOTE = [...SIGNALR, "mqtt"];
/** How `/api/presence` counts each one's connections. */
const family = (transport) => (transport === "mqtt" ? "mqtt" : "signalr");

/** The chunk of dist/ whose notice names `what`: the code that is loaded only on demand. */
function chunkOf(what) {
  const dist = path.resolve(import.meta.dirname, "../dist");
  const name = readdirSync(dist).find((f) => f.startsWith("chunk-") && readFileSync(path.join(dist, f), "utf8").split("\n", 1)[0].includes(what));
  assert.ok(name, `a chunk of dist/ bundles ${what}`);
  return `/assets/${name}`;
}

/** The transports `/api/presence` counts connections on (those with at least one). */
async function transportsInUse(url) {
  const response = await fetch(`${url}/api/presence`, { signal: AbortSignal.timeout(5000) });
  const { transports } = await response.json();
  return Object.keys(transports ?? {}).filter((t) => transports[t] > 0).sort();
}

/** A directory of the test's own for config files. */
const CONFIGS = mkdtempSync(path.join(tmpdir(), "livehub-families-"));

/** The activity feed's lines. */
function feed(page) {
  return page.$$eval("#activity li", (lis) => lis.map((li) => li.textContent ?? ""));
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

describe("SignalR and MQTT in the dashboard", () => {
  let server;
  before(async () => {
    server = await startServer([]);
  });
  after(async () => {
    await server.stop();
  });

  test("each is picked in the selector, loaded only then, named by the indicator, and carries live data and an HTTP publish", { timeout: 120000 }, async () => {
    const { page, errors, close } = await open(browser, `${server.url}/`);
    const loaded = new Set();
    page.on("request", (request) => loaded.add(new URL(request.url()).pathname));
    const notFound = [];
    page.on("response", (response) => {
      if (response.status() === 404) notFound.push(`${response.request().method()} ${new URL(response.url()).pathname}`);
    });
    const signalrChunk = chunkOf("@microsoft/signalr ");
    const mqttChunk = chunkOf("MQTT.js");
    try {
      await connected(page, "websocket");
      const groups = await page.$$eval("#transport-select optgroup", (gs) => gs.map((g) => [g.label, [...g.querySelectorAll("option")].map((o) => o.value)]));
      assert.deepEqual(groups, [
        ["livehub", ["websocket", "sse", "long-polling", "polling"]],
        ["SignalR", SIGNALR],
        ["MQTT", ["mqtt"]],
      ]);
      assert.ok(!loaded.has(signalrChunk) && !loaded.has(mqttChunk), `neither SignalR nor MQTT.js is loaded by default: ${[...loaded].join(" ")}`);

      for (const transport of REMOTE) {
        await page.selectOption("#transport-select", transport);
        await connected(page, transport);
        await cpuUpdates(page, RECONNECT);
        // Only this family carries the page's data now: the hub before it has gone.
        await waitFor(async () => (await transportsInUse(server.url)).join() === family(transport), RECONNECT, `presence counting only ${family(transport)}`);

        const title = `Published over HTTP while on ${transport}`;
        await publishHttp(server.url, "weather/alerts", { id: `http-${transport}`, ts: Date.now(), station: "harbor", severity: "warning", title, message: "a test alert" });
        await waitFor(async () => (await feed(page)).some((line) => line.includes(title)), PROMPT, `the alert published while on ${transport}`);
        assert.equal(await page.inputValue("#transport-select"), transport);
        assert.equal(new URL(page.url()).searchParams.get("transport"), transport, "the pick is kept in the URL");
        await screenshot(page, `overview-${transport}`, false);
        if (transport === SIGNALR[0]) {
          assert.ok(loaded.has(signalrChunk) && !loaded.has(mqttChunk), "SignalR is loaded once picked, MQTT.js still not");
        }
      }
      assert.ok(loaded.has(mqttChunk), "MQTT.js is loaded once picked");

      await page.selectOption("#transport-select", "auto");
      await connected(page, "websocket");
      await cpuUpdates(page, RECONNECT);
      // Leaving a SignalR transport, the official client sends a Close message without waiting
      // (a POST on SSE and long polling) and ends its transport: closing the event stream ends
      // the connection, so the POST may come too late, and on long polling the DELETE that
      // follows the Close always does. Both are 404s for an ended connection, as ASP.NET Core
      // answers them, and the client ignores them; Chromium logs them. Nothing else may fail.
      assert.ok(notFound.every((r) => r === "DELETE /hubs/live" || r === "POST /hubs/live"), `only the closing requests are 404s: ${notFound.join(", ")}`);
      assert.deepEqual(
        errors.filter((e) => !(notFound.length > 0 && e === "console: Failed to load resource: the server responded with a status of 404 (Not Found)")),
        [],
      );
    } finally {
      await close();
    }
  });

  for (const transport of REMOTE) {
    const recovers = transport !== "mqtt";
    const what = recovers ? "recovers exactly what it missed" : "reports the gap, and the pages refill from history";
    test(`?transport=${transport}: across a cut line, it ${what}`, { timeout: 60000 }, async () => {
      const line = await startLine(server.port);
      const { page, errors, close } = await open(browser, `${line.url}/?transport=${transport}#/overview`);
      const channel = `test/line/${transport}`;
      try {
        await connected(page, transport);
        assert.equal(await page.inputValue("#transport-select"), transport, "the URL picks it");
        // A subscription of the test's own on the page's hub, to count what arrives.
        await page.evaluate((c) => {
          window.got = [];
          window.gaps = 0;
          window.subscribed = 0;
          const sub = window.livehubDashboard.hub().subscribe(c);
          sub.on("message", (m) => window.got.push(m.data.n));
          sub.on("unrecovered", () => window.gaps++);
          sub.on("subscribed", () => window.subscribed++);
        }, channel);
        await page.waitForFunction(() => window.subscribed === 1, null, { timeout: PROMPT });
        const got = () => page.evaluate(() => window.got);
        await publishHttp(server.url, channel, { n: 1 });
        await waitFor(async () => (await got()).length === 1, PROMPT, "the first publication");

        line.cut();
        await page.waitForSelector("body[data-stale]", { timeout: PROMPT });
        for (const n of [2, 3, 4]) {
          await publishHttp(server.url, channel, { n });
        }
        line.restore();
        await connected(page, transport);
        await page.waitForFunction(() => window.subscribed === 2, null, { timeout: PROMPT });
        await publishHttp(server.url, channel, { n: 5 });
        await waitFor(async () => (await got()).at(-1) === 5, PROMPT, "the publication after the reconnect");
        await cpuUpdates(page, RECONNECT);

        if (recovers) {
          assert.deepEqual(await got(), [1, 2, 3, 4, 5], "SignalR's Subscribe with positions delivers what was missed, once");
          assert.equal(await page.evaluate(() => window.gaps), 0);
        } else {
          assert.deepEqual(await got(), [1, 5], "MQTT delivers nothing that was published while cut off");
          assert.equal(await page.evaluate(() => window.gaps), 1, "so it reports the gap");
          // The pages' channels report it too, and they refill from history.
          await waitFor(async () => (await feed(page)).some((l) => /Could not recover .* reloaded from history/.test(l)), PROMPT, "the feed saying the pages refilled from history");
        }
        assert.deepEqual(unexpected(errors), []);
      } finally {
        await close();
        await line.close();
      }
    });
  }
});

test("SignalR or MQTT over WebSocket switched off on the server: the page falls back to automatic and says why", { timeout: 60000 }, async () => {
  const config = path.join(CONFIGS, "off.toml");
  writeFileSync(config, "[signalr]\nenabled = false\n\n[mqtt]\nwebsocket = false\n");
  const server = await startServer(["--config", config]);
  const { page, errors, close } = await open(browser, `${server.url}/?transport=signalr-sse`);
  try {
    await page.waitForFunction(() => document.querySelector("#notice")?.hidden === false, null, { timeout: RECONNECT });
    assert.equal(await page.textContent("#notice"), "SignalR · Server-Sent Events was picked, but signalr is disabled on this server: switched to automatic.");
    await connected(page, "websocket");
    assert.equal(await page.inputValue("#transport-select"), "auto");

    await page.selectOption("#transport-select", "mqtt");
    await page.waitForFunction(() => /^MQTT/.test(document.querySelector("#notice")?.textContent ?? ""), null, { timeout: RECONNECT });
    assert.equal(await page.textContent("#notice"), "MQTT · WebSocket was picked, but mqtt is disabled on this server: switched to automatic.");
    await connected(page, "websocket");
    await cpuUpdates(page, RECONNECT);
    assert.equal(await page.inputValue("#transport-select"), "auto");
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await close();
    await server.stop();
  }
});

test("with access control on, SignalR and MQTT connect with the token from the page's URL, and say they are refused without one", { timeout: 60000 }, async () => {
  const secret = "families-test-secret";
  const config = path.join(CONFIGS, "auth.toml");
  writeFileSync(config, `[auth.jwt]\nhmac_secret = "${secret}"\n`);
  const server = await startServer(["--config", config]);
  const token = execFileSync(LIVEHUB_BIN, ["token", "--secret", secret, "--sub", "viewer", "--subscribe", "#", "--subscribe", "$sys/#", "--ttl", "600"], {
    stdio: ["ignore", "pipe", "ignore"],
  })
    .toString()
    .trim();
  try {
    for (const transport of ["signalr-websockets", "signalr-long-polling", "mqtt"]) {
      const allowed = await open(browser, `${server.url}/?token=${token}&transport=${transport}`);
      const refused = await open(browser, `${server.url}/?transport=${transport}`);
      try {
        await connected(allowed.page, transport);
        await cpuUpdates(allowed.page, RECONNECT);
        await refused.page.waitForSelector('#conn-state[data-state="disconnected"]', { timeout: RECONNECT });
        await waitFor(async () => (await feed(refused.page)).some((t) => /unauthori[sz]ed|credential/i.test(t)), RECONNECT, `the feed saying why ${transport} was refused`);
        assert.deepEqual(allowed.errors, []);
        // The refused negotiate is a 401, which Chromium logs.
        assert.deepEqual(refused.errors.filter((e) => !/status of 401/.test(e)), []);
      } finally {
        await allowed.close();
        await refused.close();
      }
    }
  } finally {
    await server.stop();
  }
});
