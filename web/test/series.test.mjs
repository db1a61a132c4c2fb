// The charts open with a range already drawn from the series endpoint, against the real binary:
// a server with a SQLite store whose metrics/system history spans the past hour (published
// through the HTTP API, then moved back in time in the stopped server's database, since the
// server stamps publications with its own clock), the 1 h default, switching the range, the
// pick remembered, and a server in memory saying that it holds only recent history.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { publishBatchHttp, startServer } from "../../clients/js/test/harness.mjs";
import { PROMPT, connected, launch, numberAt, open, screenshot, unexpected } from "./browser.mjs";

/** Samples seeded: 150, ten minutes without any, then 150 more, ten seconds apart. */
const SEEDED = 300;
const SPACING_MS = 10_000;
const HOLE_MS = 10 * 60_000;

/** A series request's query, from its URL. */
function query(request) {
  return new URL(request.url()).searchParams;
}

/** Buckets with data in a series answer, for `field`. */
function filled(answer, field) {
  const list = answer.series ? answer.series.find((s) => s.field === field)?.buckets : answer.buckets;
  return (list ?? []).filter((b) => b.count > 0);
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

describe("with a SQLite store holding the past hour", () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "livehub-series-"));
  let server;
  /** The time of each seeded sample, oldest first. */
  let times;

  before(async () => {
    // Publish the samples through the HTTP API, with nothing else running.
    const seeding = await startServer(["--store", "sqlite", "--data-dir", dataDir, "--no-sources"]);
    const items = Array.from({ length: SEEDED }, (_, i) => ({
      channel: "metrics/system",
      data: {
        ts: i,
        cpu: { total: 10 + (i % 50), cores: [i % 30, i % 70] },
        memory: { percent: 40, total: 100 },
        swap: { total: 0, percent: 0 },
        network: { rx_bps: i * 100, tx_bps: 500 },
        disk_io: { read_bps: 100, write_bps: i * 10 },
      },
    }));
    await publishBatchHttp(seeding.url, items);
    await seeding.stop();

    // Move them back over the past hour, in offset order, the newest a second ago: the server
    // stamped them with its own clock as they arrived.
    const newest = Date.now() - 1000;
    times = Array.from({ length: SEEDED }, (_, i) => newest - (SEEDED - 1 - i) * SPACING_MS - (i < SEEDED / 2 ? HOLE_MS : 0));
    const cases = times.map((ts, i) => `WHEN ${i + 1} THEN ${ts}`).join(" ");
    const channel = "(SELECT id FROM channels WHERE name = 'metrics/system')";
    execFileSync("sqlite3", [
      path.join(dataDir, "livehub.sqlite3"),
      `UPDATE entries SET ts = CASE seq ${cases} END WHERE channel = ${channel};
       UPDATE entries SET data = CAST(json_set(CAST(data AS TEXT), '$.ts', ts) AS BLOB) WHERE channel = ${channel};
       UPDATE channels SET latest_ts = ${newest} WHERE name = 'metrics/system';`,
    ]);
    server = await startServer(["--store", "sqlite", "--data-dir", dataDir]);
  });
  after(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("the overview opens with the last hour drawn from /series, and the range picks refetch", { timeout: 60000 }, async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const errors = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(e.message));
    try {
      const series = (step) =>
        page.waitForResponse((r) => r.url().includes("/api/channels/metrics/system/series?") && new URL(r.url()).searchParams.get("step") === step, { timeout: PROMPT * 5 });
      const hour = series("10s");
      await page.goto(`${server.url}/`);
      const response = await hour;
      const asked = query(response.request());
      for (const field of ["cpu.total", "cpu.cores.0", "memory.percent", "network.rx_bps", "network.tx_bps", "disk_io.read_bps", "disk_io.write_bps"]) {
        assert.ok(asked.getAll("field").includes(field), `the one request reads ${field}: ${asked}`);
      }
      const from = Number(asked.get("from"));
      assert.equal(from % 10_000, 0, "from is a multiple of the step, so buckets stay put");
      assert.ok(Math.abs(Date.now() - 3_600_000 - from) < 60_000, "from is an hour ago");
      const answer = await response.json();
      assert.equal(answer.store, "sqlite");
      assert.equal(answer.retention.max_age_secs, 86_400, "with a store, the sources keep a day of metrics");
      const seeded = filled(answer, "cpu.total").filter((b) => b.t <= times.at(-1));
      assert.equal(seeded.length, SEEDED, "every seeded sample in a bucket of its own");
      assert.equal(answer.oldest_ts, times[0]);

      await page.waitForSelector('[data-chart="cpu"]:not([data-loading]) canvas', { timeout: PROMPT });
      for (const chart of ["cpu", "memory", "network", "disk"]) {
        const points = await numberAt(page, `[data-chart="${chart}"]`, "data-points");
        assert.ok(points >= SEEDED + 1, `${chart}: the seeded buckets and the hole's gap marker (${points} points)`);
        assert.ok((await numberAt(page, `[data-chart="${chart}"]`, "data-gaps")) >= 1, `${chart}: the ten minutes without data are a gap`);
        assert.equal(await page.getAttribute(`[data-chart="${chart}"]`, "data-range"), "1h");
      }
      assert.equal(await page.getAttribute('[data-range-picker="overview"] [data-range="1h"]', "aria-pressed"), "true", "1 h by default");
      assert.ok(await page.isHidden('[data-range-picker="overview"] [data-coverage-note]'), "the hour is covered: no note");
      await connected(page);
      await screenshot(page, "series-1h");

      // Five minutes: a new request at one-second buckets, the seeded samples of those minutes.
      const five = series("1s");
      await page.click('[data-range-picker="overview"] [data-range="5m"]');
      const fiveAnswer = await (await five).json();
      const recent = times.filter((t) => t >= fiveAnswer.from).length;
      assert.equal(filled(fiveAnswer, "cpu.total").filter((b) => b.t <= times.at(-1)).length, recent);
      await page.waitForFunction(() => document.querySelector('[data-chart="cpu"]')?.dataset.range === "5m", null, { timeout: PROMPT });
      await page.waitForSelector('[data-chart="cpu"]:not([data-loading])', { timeout: PROMPT });
      const points = await numberAt(page, '[data-chart="cpu"]', "data-points");
      assert.ok(points >= recent && points < SEEDED, `five minutes hold ${points} points, from ${recent} seeded`);
      assert.equal(await numberAt(page, '[data-chart="cpu"]', "data-step"), 1000);

      // A day: five-minute buckets, and a note that nothing older than the seeded hour is kept.
      const day = series("5m");
      await page.click('[data-range-picker="overview"] [data-range="24h"]');
      const dayAnswer = await (await day).json();
      assert.ok(filled(dayAnswer, "cpu.total").length >= 8, "the seeded hour in five-minute buckets");
      await page.waitForSelector('[data-range-picker="overview"] [data-coverage-note]:not([hidden])', { timeout: PROMPT });
      assert.match(await page.textContent('[data-range-picker="overview"] [data-coverage-note]'), /nothing older is kept for metrics\/system/);
      await screenshot(page, "series-24h");

      // The pick is remembered: a reload asks for a day at once.
      const again = series("5m");
      await page.reload();
      await again;
      assert.equal(await page.getAttribute('[data-range-picker="overview"] [data-range="24h"]', "aria-pressed"), "true");
      assert.deepEqual(unexpected(errors), []);
    } finally {
      await context.close();
    }
  });
});

describe("with the store in memory", () => {
  let server;
  before(async () => {
    server = await startServer([]);
  });
  after(async () => {
    await server?.stop();
  });

  test("the chart says the server holds only recent history, and why", { timeout: 30000 }, async () => {
    const { page, errors, close } = await open(browser, `${server.url}/#/sensors`);
    try {
      const response = await page.waitForResponse((r) => r.url().includes("/api/channels/sensors/lab-1/series?"), { timeout: PROMPT * 5 });
      assert.equal((await response.json()).store, "memory");
      await page.waitForSelector('[data-range-picker="sensors"] [data-coverage-note]:not([hidden])', { timeout: PROMPT });
      const note = await page.textContent('[data-range-picker="sensors"] [data-coverage-note]');
      assert.match(note, /in memory \(store = memory\), at most 600 publications or 10 min per channel/);
      await page.waitForSelector('[data-chart="sensor"] canvas', { timeout: PROMPT });
      assert.equal(await page.getAttribute('[data-chart="sensor"]', "data-range"), "1h");
      await screenshot(page, "series-memory");
      assert.deepEqual(unexpected(errors), []);
    } finally {
      await close();
    }
  });
});
