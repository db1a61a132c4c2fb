// Every page on a phone (390 px wide), in Chromium against the real binary: nothing wider than
// the screen, the connection state stays in view while the page scrolls, tables that do not fit
// scroll sideways and say so, and the sensor chart keeps a plot wide enough to read. A full-page
// screenshot of each page goes to $ARTIFACTS/mobile-<page>.png.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { startServer } from "../../clients/js/test/harness.mjs";
import { PHONE, PROMPT, connected, launch, open, screenshot, unexpected } from "./browser.mjs";

/** The narrowest plot (uPlot's drawing area, axes excluded) a 10 Hz chart is readable at. */
const MIN_PLOT_WIDTH = 250;

const PAGES = {
  overview: '[data-chart="cpu"] canvas',
  markets: "tr[data-symbol]",
  transit: "[data-vehicle]",
  sensors: '[data-chart="sensor"] canvas',
};

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

describe("on a phone", () => {
  for (const [name, ready] of Object.entries(PAGES)) {
    test(`${name}: fits 390 px, keeps the connection state in view, scrolls its tables with a cue`, { timeout: 60000 }, async () => {
      const { page, errors, close } = await open(browser, `${server.url}/#/${name}`, { viewport: PHONE, isMobile: true });
      try {
        await connected(page);
        await page.waitForSelector(ready, { timeout: 10000 });
        await page.waitForTimeout(1000); // a second of live data, for the screenshot

        const widths = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, screen: window.innerWidth }));
        assert.ok(widths.page <= widths.screen, `the page is ${widths.page} px wide on a ${widths.screen} px screen`);

        // Scrolled to the bottom, the indicator is still on screen.
        await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
        await page.waitForTimeout(100);
        const state = await page.$eval("#conn-state", (el) => {
          const r = el.getBoundingClientRect();
          return { top: r.top, bottom: r.bottom, height: window.innerHeight, scrolled: window.scrollY };
        });
        if (name === "overview") {
          assert.ok(state.scrolled > 0, `the overview is taller than the screen (scrolled ${state.scrolled})`);
        }
        assert.ok(state.top >= 0 && state.bottom <= state.height, `the connection state is in view after scrolling: ${JSON.stringify(state)}`);

        // A table wider than the screen scrolls inside its wrapper, which shows that there is more.
        const tables = await page.$$eval(".table-wrap", (wraps) =>
          wraps.map((w) => ({ wider: w.scrollWidth > w.clientWidth + 1, overflow: getComputedStyle(w).overflowX, cue: w.dataset.more ?? "" })),
        );
        for (const t of tables) {
          if (t.wider) {
            assert.ok(["auto", "scroll"].includes(t.overflow), `a wide table scrolls (${t.overflow})`);
            assert.match(t.cue, /right/, "a wide table shows a cue that there is more to the right");
          }
        }

        if (name === "sensors") {
          const plot = await page.$eval('[data-chart="sensor"] .u-over', (el) => el.getBoundingClientRect().width);
          assert.ok(plot >= MIN_PLOT_WIDTH, `the sensor plot is ${plot} px wide`);
        }

        await page.evaluate(() => window.scrollTo(0, 0));
        await screenshot(page, `mobile-${name}`);
        assert.deepEqual(errors, []);
      } finally {
        await close();
      }
    });
  }

  test("while the server is away, the stale status, countdown and Retry now fit the screen", { timeout: 60000 }, async () => {
    const { page, errors, close } = await open(browser, `${server.url}/#/overview`, { viewport: PHONE, isMobile: true });
    try {
      await connected(page);
      await page.waitForSelector('[data-chart="cpu"] canvas', { timeout: 10000 });
      await server.stop();
      await page.waitForSelector("body[data-stale]", { timeout: PROMPT });
      await page.waitForSelector("#retry-now:not([hidden])", { timeout: 10000 });
      await page.evaluate(() => window.scrollTo(0, 600));
      const fits = await page.evaluate(() => {
        const inView = (sel) => {
          const r = document.querySelector(sel).getBoundingClientRect();
          return r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth;
        };
        return { width: document.documentElement.scrollWidth <= window.innerWidth, state: inView("#conn-state"), retry: inView("#retry-now"), since: inView("#stale-since") };
      });
      assert.deepEqual(fits, { width: true, state: true, retry: true, since: true });
      await screenshot(page, "mobile-stale", false);
      assert.deepEqual(unexpected(errors), []);
    } finally {
      await close();
      server = await startServer([], { port: server.port });
    }
  });

  test("markets: the ticker table can be scrolled to its last column", { timeout: 30000 }, async () => {
    const { page, errors, close } = await open(browser, `${server.url}/#/markets`, { viewport: PHONE, isMobile: true });
    try {
      await page.waitForSelector("tr[data-symbol]", { timeout: 10000 });
      const wrap = ".panel .table-wrap";
      const before = await page.$eval(wrap, (w) => ({ wider: w.scrollWidth > w.clientWidth + 1, more: w.dataset.more ?? "" }));
      if (before.wider) {
        await page.$eval(wrap, (w) => w.scrollTo({ left: w.scrollWidth }));
        await page.waitForFunction((s) => !(document.querySelector(s)?.dataset.more ?? "").includes("right"), wrap, { timeout: PROMPT });
        const after = await page.$eval(wrap, (w) => w.dataset.more ?? "");
        assert.match(after, /left/, "scrolled to the end, the cue points back");
      }
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });
});
