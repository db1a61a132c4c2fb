// The activity feed when the server goes away on the HTTP transports (issue 19 saw "poll failed:
// TypeError: Failed to fetch" there): a page pinned to long polling or polling says in words that
// the server is unreachable, and never quotes the browser's error. The client count in the header,
// the server's figure too, is dimmed while the page is stale.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { startServer } from "../../clients/js/test/harness.mjs";
import { PROMPT, RECONNECT, connected, launch, open, unexpected } from "./browser.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The feed's lines, newest first. */
function feed(page) {
  return page.$$eval("#activity li", (lis) => lis.map((li) => li.textContent ?? ""));
}

for (const transport of ["long-polling", "polling"]) {
  test(`${transport}: with the server gone, the feed says it is unreachable, without the browser's TypeError`, { timeout: 60000 }, async () => {
    let server = await startServer([]);
    const { page, errors, close } = await open(browser, `${server.url}/?transport=${transport}`);
    try {
      await connected(page, transport);
      await server.stop();
      await page.waitForSelector("body[data-stale]", { timeout: RECONNECT });
      await page.waitForFunction(
        () => [...document.querySelectorAll("#activity li")].some((li) => /unreachable/i.test(li.textContent ?? "")),
        null,
        { timeout: RECONNECT },
      );
      // The client count in the header is the server's figure too: dimmed while stale.
      assert.ok(Number(await page.$eval(".clients", (el) => getComputedStyle(el).opacity)) < 1, "the client count is dimmed");
      const lines = await feed(page);
      assert.ok(!lines.some((line) => /TypeError|Failed to fetch|fetch failed|poll failed/.test(line)), `no raw errors in the feed: ${lines.join(" | ")}`);

      server = await startServer([], { port: server.port });
      await connected(page, transport, RECONNECT);
      await page.waitForSelector("body[data-stale]", { state: "detached", timeout: PROMPT });
      assert.equal(await page.$eval(".clients", (el) => getComputedStyle(el).opacity), "1", "the client count is live again");
      const after = await feed(page);
      assert.ok(!after.some((line) => /TypeError|Failed to fetch|fetch failed|poll failed/.test(line)), `no raw errors in the feed: ${after.join(" | ")}`);
      // A polling read from a position of the old server's epoch is answered 409 by design (the
      // client then starts the channel afresh); Chromium logs each such answer.
      assert.deepEqual(unexpected(errors).filter((e) => !/status of 409/.test(e)), []);
    } finally {
      await close();
      await server.stop();
    }
  });
}
