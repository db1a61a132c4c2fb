// The small things new users saw: a legend entry for the per-core CPU lines, no empty swap meter
// on a host without swap, "client" for one client, a loading state while the series loads, and
// time labels that are not cut off at the charts' edges.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { startServer } from "../../clients/js/test/harness.mjs";
import { PHONE, PROMPT, connected, cpuUpdates, launch, numberAt, open } from "./browser.mjs";

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

/**
 * Records every time label (hh:mm:ss, or hh:mm over an hour) the page draws on a canvas: its
 * left and right edges in canvas pixels, as placed by the canvas' transform and text alignment,
 * and the canvas' width.
 */
function recordTimeLabels() {
  window.timeLabels = [];
  const fillText = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
    const value = String(text);
    if (/^\d\d:\d\d(:\d\d)?$/.test(value)) {
      const t = this.getTransform();
      const width = this.measureText(value).width * t.a;
      const at = t.a * x + t.e;
      const align = this.textAlign;
      const left = align === "center" ? at - width / 2 : align === "right" || align === "end" ? at - width : at;
      const chart = this.canvas.closest("[data-chart]")?.getAttribute("data-chart") ?? "?";
      window.timeLabels.push({ chart, value, left, right: left + width, canvas: this.canvas.width });
    }
    return fillText.call(this, text, x, y, ...rest);
  };
}

for (const [name, viewport] of [["desktop", { width: 1280, height: 900 }], ["phone", PHONE]]) {
  test(`${name}: every time label on the x axis, the last one too, is drawn whole inside its chart`, { timeout: 30000 }, async () => {
    const context = await browser.newContext({ viewport, isMobile: name === "phone" });
    try {
      await context.addInitScript(recordTimeLabels);
      const page = await context.newPage();
      for (const [hash, chart] of [["overview", "cpu"], ["sensors", "sensor"]]) {
        await page.goto(`${server.url}/#/${hash}`);
        await connected(page);
        await page.waitForFunction((c) => Number(document.querySelector(`[data-chart="${c}"]`)?.getAttribute("data-points")) >= 3, chart, { timeout: 10000 });
        // A few redraws as the axis moves on.
        await page.waitForTimeout(1500);
        const labels = await page.evaluate(() => window.timeLabels.splice(0));
        const own = labels.filter((l) => l.chart === chart);
        assert.ok(own.length > 0, `${hash}: time labels drawn on the ${chart} chart`);
        const cut = labels.filter((l) => l.left < 0 || l.right > l.canvas);
        assert.deepEqual(cut, [], `${hash}: labels cut off at an edge`);
        // The newest time is the right end of the plot, and a tick falls on it now and then: the
        // canvas must have room for half a label to the right of the plot.
        const room = await page.evaluate((c) => {
          const el = document.querySelector(`[data-chart="${c}"]`);
          const canvas = el.querySelector("canvas");
          const scale = canvas.width / canvas.getBoundingClientRect().width;
          return (canvas.getBoundingClientRect().right - el.querySelector(".u-over").getBoundingClientRect().right) * scale;
        }, chart);
        const half = Math.max(...own.map((l) => l.right - l.left)) / 2;
        assert.ok(room >= half, `${hash}: ${room} px right of the plot for half a label of ${half} px`);
        assert.ok((await numberAt(page, `[data-chart="${chart}"]`, "data-points")) >= 3);
      }
    } finally {
      await context.close();
    }
  });
}

for (const transport of ["long-polling", "polling"]) {
  test(`two tabs on ${transport} count as two clients, though they share an address and a browser`, { timeout: 30000 }, async () => {
    const context = await browser.newContext();
    try {
      const tabs = [await context.newPage(), await context.newPage()];
      for (const tab of tabs) {
        await tab.goto(`${server.url}/?transport=${transport}`);
        await connected(tab, transport);
      }
      // Each tab's hub names itself in its polls; one key per address and browser said 1.
      await tabs[0].waitForFunction(
        (t) => {
          const holder = document.querySelector("#clients-count")?.parentElement;
          const match = (holder?.title ?? "").match(new RegExp(`${t}: (\\d+)`));
          return match !== null && Number(match[1]) >= 2;
        },
        transport,
        { timeout: 10000 },
      );
    } finally {
      await context.close();
    }
  });
}
