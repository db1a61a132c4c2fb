// The light theme: it follows the system's preference, the toggle overrides it and is remembered,
// and toggling back to what the system prefers follows the system again. Screenshots of the
// overview in both themes.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { startServer } from "../../clients/js/test/harness.mjs";
import { connected, cpuUpdates, launch, open, screenshot } from "./browser.mjs";

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

/** The page's background luminance, 0 (black) to 255 (white). */
function background(page) {
  return page.evaluate(() => {
    const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\d+/g).map(Number);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  });
}

test("a system that prefers light gets the light theme; the toggle switches and is remembered", { timeout: 60000 }, async () => {
  const { page, errors, close } = await open(browser, `${server.url}/`, { colorScheme: "light" });
  try {
    await connected(page);
    await cpuUpdates(page);
    assert.ok((await background(page)) > 200, "light background");
    await page.waitForTimeout(500);
    await screenshot(page, "overview-light");

    await page.click("#theme-toggle");
    assert.ok((await background(page)) < 50, "dark after the toggle");
    assert.equal(await page.getAttribute("html", "data-theme"), "dark");
    await page.reload();
    await connected(page);
    assert.ok((await background(page)) < 50, "still dark after a reload");

    await page.click("#theme-toggle");
    assert.equal(await page.getAttribute("html", "data-theme"), null, "back to following the system");
    assert.ok((await background(page)) > 200);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

test("a system that prefers dark gets the dark theme", { timeout: 30000 }, async () => {
  const { page, errors, close } = await open(browser, `${server.url}/`, { colorScheme: "dark" });
  try {
    await connected(page);
    assert.ok((await background(page)) < 50, "dark background");
    assert.equal(await page.getAttribute("#theme-toggle", "data-effective"), "dark");
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});
