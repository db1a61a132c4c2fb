// Stale data must not look live on any page (issue 19: "prices, cards, counts and charts look
// current"): with one tab per page open, the server stops, and on every page each table, chart,
// map, card and station is inside a view marked "stale since"; once the server is back, no mark
// is left. outage.test.mjs times the overview; this covers the other pages' views.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { startServer } from "../../clients/js/test/harness.mjs";
import { PROMPT, RECONNECT, connected, launch, open, unexpected } from "./browser.mjs";

/** What shows that each page has its live data. */
const READY = {
  overview: "[data-card]",
  markets: "tr[data-symbol]",
  transit: "[data-vehicle-row]",
  sensors: "[data-station]",
};

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test("every page marks every one of its views stale while the server is away, and clears the marks", { timeout: 90000 }, async () => {
  let server = await startServer([]);
  const tabs = [];
  try {
    for (const [name, ready] of Object.entries(READY)) {
      const tab = await open(browser, `${server.url}/#/${name}`);
      tabs.push({ name, ...tab });
      await connected(tab.page);
      await tab.page.waitForSelector(ready, { timeout: 10000 });
    }
    await server.stop();
    for (const { name, page } of tabs) {
      await page.waitForSelector("body[data-stale]", { timeout: RECONNECT });
      const views = await page.evaluate((id) => {
        const root = document.getElementById(`page-${id}`);
        const shown = [...root.querySelectorAll("table, canvas, svg, [data-card], [data-station]")].filter((el) => el.getClientRects().length > 0);
        return { shown: shown.length, live: shown.filter((el) => el.closest("[data-stale-since]") === null).map((el) => el.outerHTML.slice(0, 80)) };
      }, name);
      assert.ok(views.shown > 0, `${name}: views on the page`);
      assert.deepEqual(views.live, [], `${name}: views not marked stale`);
    }
    server = await startServer([], { port: server.port });
    for (const { name, page, errors } of tabs) {
      await connected(page, undefined, RECONNECT);
      await page.waitForSelector("[data-stale-since]", { state: "detached", timeout: PROMPT });
      // History read from a position of the old server's epoch is answered 409 by design (the
      // page then reads afresh); Chromium logs each such answer.
      assert.deepEqual(unexpected(errors).filter((e) => !/status of 409/.test(e)), [], name);
    }
  } finally {
    for (const tab of tabs) await tab.close();
    await server.stop();
  }
});
