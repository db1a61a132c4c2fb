// The small things new users saw: a legend entry for the per-core CPU lines, no empty swap meter
// on a host without swap, "client" for one client, and a loading state while the series loads.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { startServer } from "../../clients/js/test/harness.mjs";
import { PROMPT, connected, cpuUpdates, launch, open } from "./browser.mjs";

let browser;
let server;
before(async () => {
  browser = await launch();
  server = await startServer([]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the per-core lines have a legend entry, swap has no empty meter, one client is 'client'", { timeout: 30000 }, async () => {
  const { page, errors, close } = await open(browser, `${server.url}/`);
  try {
    await connected(page);
    await cpuUpdates(page);
    const cores = await page.textContent('[data-chart="cpu"] .legend .key.group');
    assert.match(cores ?? "", /each of \d+ cores/);

    const swap = await page.textContent('[data-card="swap"] .value');
    const meterHidden = await page.$eval('[data-card="swap"] .meter', (m) => m.hidden);
    assert.equal(meterHidden, swap === "none", `swap "${swap}": the meter is ${meterHidden ? "hidden" : "shown"}`);
    if (swap === "none") {
      assert.ok(!/Swap/.test((await page.textContent('[data-chart="memory"] .legend')) ?? ""), "no swap line in the legend");
    }

    await page.waitForFunction(() => /^\d+$/.test(document.querySelector("#clients-count")?.textContent ?? ""), null, { timeout: PROMPT });
    const count = Number(await page.textContent("#clients-count"));
    assert.equal(await page.textContent("#clients-label"), count === 1 ? "client" : "clients");
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

test("the charts say they are loading while their series is on its way", { timeout: 30000 }, async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    let release;
    const held = new Promise((resolve) => (release = resolve));
    await page.route("**/api/channels/metrics/system/series**", async (route) => {
      await held;
      await route.continue();
    });
    await page.goto(`${server.url}/`);
    await page.waitForSelector('[data-chart="cpu"][data-loading]', { timeout: PROMPT });
    const text = await page.evaluate(() => getComputedStyle(document.querySelector('[data-chart="cpu"] .plot'), "::after").content);
    assert.match(text, /Loading history/);
    release();
    await page.waitForSelector('[data-chart="cpu"]:not([data-loading])', { timeout: PROMPT });
  } finally {
    await context.close();
  }
});

test("pinned to SSE, a page opens at most two streams at start, not one per subscription", { timeout: 60000 }, async () => {
  for (const name of ["overview", "markets", "transit", "sensors"]) {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const streams = [];
      page.on("request", (r) => {
        if (r.url().includes("/sse?")) streams.push(r.url());
      });
      await page.goto(`${server.url}/?transport=sse#/${name}`);
      await connected(page, "sse");
      // Every page subscribes to a dozen or more channels; the catalog's arrive a moment after
      // the first stream opened, and join it in one reopen.
      await page.waitForTimeout(1500);
      assert.ok(streams.length <= 2, `${name}: ${streams.length} SSE streams`);
      const channels = new URL(streams.at(-1)).searchParams.getAll("channel");
      assert.ok(channels.length >= 3, `${name}: the last stream carries every channel (${channels.length})`);
    } finally {
      await context.close();
    }
  }
});
