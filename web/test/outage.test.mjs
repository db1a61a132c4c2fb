// The worst minute, in the browser against the real binary:
// - the server stopped for 15 s: every view is marked stale within 2 s, the indicator counts
//   down to the next attempt and offers "Retry now", the page is connected again within 3 s of
//   the server's return, the marks go, and the charts draw the missing interval as a gap;
// - "Retry now" ends a wait at once;
// - a transport pinned in the URL that the server disabled: the page falls back to automatic and
//   says why.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

import { startServer, waitFor } from "../../clients/js/test/harness.mjs";
import { PROMPT, RECONNECT, connected, cpuUpdates, launch, numberAt, open, screenshot, unexpected } from "./browser.mjs";

/** The outage of the issue: a rolling restart that keeps the server away this long. */
const OUTAGE_MS = 15000;
/** The bound from the server's return to a connected page. */
const BACK_WITHIN = 3000;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Whether every live view (cards, charts) is marked stale, itself or by the view around it. */
function allViewsStale(page) {
  return page.evaluate(() => {
    const views = [...document.querySelectorAll("[data-card], [data-chart]")];
    return views.length > 0 && views.every((v) => v.closest("[data-stale-since]") !== null);
  });
}

test("the server stopped for 15 s: stale within 2 s, a countdown, connected within 3 s of its return, a gap in the charts", { timeout: 90000 }, async () => {
  let server = await startServer([]);
  // The 5-minute range, in one-second buckets: a gap is more than a step and five seconds
  // without data, and at 10 s buckets (the hour) a 15 s outage may leave no bucket empty.
  const { page, errors, close } = await open(browser, `${server.url}/`, { storage: { "livehub.dashboard.range.overview": "5m" } });
  try {
    await connected(page, "websocket");
    await cpuUpdates(page);
    // A few seconds of chart before the outage, so that the gap has data on both sides.
    await waitFor(async () => (await numberAt(page, '[data-chart="cpu"]', "data-points")) >= 3, 10000, "three points in the CPU chart");
    assert.equal(await page.$("[data-stale-since]"), null, "nothing is stale while connected");
    assert.equal(await numberAt(page, '[data-chart="cpu"]', "data-gaps"), 0);

    // The hub's status changes, to say what it was doing if the reconnect is late.
    await page.evaluate(() => {
      window.statusLog = [];
      window.livehubDashboard.hub().on("status", (s) => window.statusLog.push(`${Date.now()} ${s.state} attempt ${s.attempt} retryAt ${s.retryAt === null ? "-" : s.retryAt - Date.now()}`));
    });
    const stoppedAt = Date.now();
    await server.stop();
    await page.waitForSelector("body[data-stale]", { timeout: PROMPT - (Date.now() - stoppedAt) });
    assert.ok(await allViewsStale(page), "every card and chart is marked stale");
    const since = await page.textContent("#stale-since");
    assert.match(since ?? "", /^Stale since \d\d:\d\d:\d\d$/);
    const label = await page.$eval("[data-card]", (el) => el.closest("[data-stale-since]")?.dataset.staleSince);
    assert.equal(`Stale since ${label}`, since, "the views say since when");
    const staleAfter = Date.now() - stoppedAt;

    // While the server is away: a real countdown, and "Retry now".
    await page.waitForFunction(() => /Reconnecting in \d+ s/.test(document.querySelector("#conn-state")?.textContent ?? ""), null, { timeout: 8000 });
    await page.waitForSelector("#retry-now:not([hidden])", { timeout: 8000 });
    await screenshot(page, "outage-stale");
    await sleep(OUTAGE_MS - (Date.now() - stoppedAt));
    assert.ok(await allViewsStale(page), "still stale at the end of the outage");

    server = await startServer([], { port: server.port });
    const returned = Date.now();
    try {
      await connected(page, "websocket", BACK_WITHIN);
    } catch (err) {
      const log = await page.evaluate(() => window.statusLog.join("\n"));
      throw new Error(`${err.message}\nserver back at ${returned}; the hub's status:\n${log}`);
    }
    const backAfter = Date.now() - returned;
    await page.waitForSelector("[data-stale-since]", { state: "detached", timeout: PROMPT });
    assert.equal(await page.$("body[data-stale]"), null);
    assert.ok(await page.isHidden("#stale-since"));

    // The server lost its history: the charts refill with what it has now, and 15 s of nothing
    // between the old data and the new is drawn as a gap, not a straight line.
    await cpuUpdates(page, RECONNECT);
    await waitFor(async () => (await numberAt(page, '[data-chart="cpu"]', "data-gaps")) >= 1, PROMPT, "a gap in the CPU chart");
    for (const chart of ["memory", "network", "disk"]) {
      assert.ok((await numberAt(page, `[data-chart="${chart}"]`, "data-gaps")) >= 1, `a gap in the ${chart} chart`);
    }
    await sleep(1500); // two more samples on the right of the gap, for the screenshot
    await screenshot(page, "outage-after-gap");
    const feed = await page.$$eval("#activity li", (lis) => lis.map((li) => li.textContent ?? ""));
    assert.ok(!feed.some((line) => /TypeError|Failed to fetch|fetch failed/.test(line)), `no raw errors in the feed: ${feed.join(" | ")}`);
    console.log(`# stale ${staleAfter} ms after the stop; connected ${backAfter} ms after the return`);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await close();
    await server.stop();
  }
});

test('"Retry now" ends the wait at once', { timeout: 60000 }, async () => {
  let server = await startServer([]);
  // The 5-minute range, in one-second buckets: a gap is more than a step and five seconds
  // without data, and at 10 s buckets (the hour) a 15 s outage may leave no bucket empty.
  const { page, errors, close } = await open(browser, `${server.url}/`, { storage: { "livehub.dashboard.range.overview": "5m" } });
  try {
    await connected(page, "websocket");
    // No /health probe gets through: once the server is back, only the button can end the wait
    // (a wait that ends while probes fail opens the breaker again without a round).
    await page.route("**/health", (route) => route.abort("connectionrefused"));
    await server.stop();
    // Wait until the breaker is open (five failed rounds): from then on a wait ends in a round
    // only when a probe got through, or the button is pressed.
    await page.waitForFunction(() => {
      const status = window.livehubDashboard.hub().status;
      return status.attempt >= 5 && status.retryAt !== null;
    }, null, { timeout: RECONNECT, polling: 20 });
    server = await startServer([], { port: server.port });
    // The server is back, but with no probe getting through the page does not know it.
    await sleep(1500);
    assert.equal(await page.getAttribute("#conn-state", "data-state"), "reconnecting", "still waiting without the button");
    await page.waitForSelector("#retry-now:not([hidden])", { timeout: 6000 });
    const clicked = Date.now();
    await page.click("#retry-now");
    await connected(page, "websocket", 1000);
    const at = Date.now();
    console.log(`# connected ${at - clicked} ms after "Retry now"`);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await close();
    await server.stop();
  }
});

test("a transport pinned in the URL and disabled on the server: the page falls back to automatic and says why", { timeout: 60000 }, async () => {
  const server = await startServer(["--disable", "sse"]);
  const { page, errors, close } = await open(browser, `${server.url}/?transport=sse`);
  try {
    await connected(page, "websocket", RECONNECT);
    await cpuUpdates(page, RECONNECT);
    assert.equal(await page.inputValue("#transport-select"), "auto");
    await page.waitForSelector("#notice:not([hidden])", { timeout: PROMPT });
    assert.match((await page.textContent("#notice")) ?? "", /Server-Sent Events was picked, but sse is disabled on this server: switched to automatic/);
    assert.ok(!page.url().includes("transport=sse"), `the URL no longer pins sse: ${page.url()}`);
    await screenshot(page, "fallback-pinned-sse");
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await close();
    await server.stop();
  }
});

test("websocket pinned in the URL and disabled on the server: the page falls back to automatic and says why", { timeout: 60000 }, async () => {
  const server = await startServer(["--disable", "websocket"]);
  const { page, errors, close } = await open(browser, `${server.url}/?transport=websocket`);
  try {
    await connected(page, "sse", RECONNECT);
    await cpuUpdates(page, RECONNECT);
    assert.equal(await page.inputValue("#transport-select"), "auto");
    assert.match((await page.textContent("#notice")) ?? "", /WebSocket was picked, but websocket is disabled on this server: switched to automatic/);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await close();
    await server.stop();
  }
});
