// The rows of a time chart (src/series-buffer.ts), bundled by esbuild as the dashboard is: a
// series answer's buckets, live samples after them folded into buckets of the same step once
// their step is over, gap markers where buckets or samples are missing, and the window.

import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { build } from "esbuild";

const bundle = await build({
  entryPoints: [path.join(import.meta.dirname, "../src/series-buffer.ts")],
  bundle: true,
  format: "esm",
  write: false,
  logLevel: "silent",
});
const { SeriesBuffer } = await import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString("base64")}`);

const STEP = 10_000;
const T = 1_800_000_000_000;

/** A bucket of one series at `T + i` steps. */
const bucket = (i, avg, count = 10) => ({ ts: T + i * STEP, values: [avg], counts: [count] });

function buffer() {
  const b = new SeriesBuffer(1, { capacity: 1000, gapMs: 5000 });
  b.setWindow(3_600_000, STEP);
  return b;
}

test("a series answer's non-empty buckets become rows, an empty one a gap", () => {
  const b = buffer();
  b.load([bucket(0, 1), bucket(1, 2), bucket(2, null, 0), bucket(3, 4)], T + 4 * STEP);
  const [xs, ys] = b.data();
  assert.deepEqual(ys, [1, 2, null, 4], "a marker (null) where bucket 2 was empty");
  assert.equal(xs[0], T / 1000);
  assert.equal(b.gaps, 1);
  assert.equal(b.length, 4);
  assert.equal(b.rowCount, 3);
});

test("live samples complete the answer's last bucket, then fold into buckets of their own", () => {
  const b = buffer();
  // The answer was read 4 s into bucket 1, which then held 4 samples averaging 10.
  b.load([bucket(0, 1), bucket(1, 10, 4)], T + STEP + 4000);
  for (let s = 4; s < 15; s++) b.push({ ts: T + STEP + s * 1000, values: [20] });
  // Bucket 1 is over (a sample of bucket 2 came): 4 × 10 and 6 × 20 make 16.
  const [xs, ys] = b.data();
  assert.deepEqual(xs.slice(0, 2), [T / 1000, (T + STEP) / 1000]);
  assert.equal(ys[1], 16);
  // The samples of bucket 2 stay as they came until it is over.
  assert.equal(b.rowCount, 2 + 5);
  b.push({ ts: T + 3 * STEP, values: [30] });
  assert.equal(b.rowCount, 4, "bucket 2 folded into one row, bucket 3's sample live");
  assert.equal(b.data()[1][2], 20);
  assert.equal(b.gaps, 0);
});

test("live samples the answer already counted are dropped; later ones are kept", () => {
  const b = buffer();
  b.push({ ts: T + 2 * STEP + 1000, values: [7] });
  b.push({ ts: T + 2 * STEP + 3000, values: [9] });
  b.load([bucket(0, 1), bucket(1, 2), bucket(2, 5, 2)], T + 2 * STEP + 2000);
  assert.deepEqual(b.data()[1], [1, 2, 5, 9], "the sample at +1 s is in bucket 2 already");
  assert.equal(b.push({ ts: T + 2 * STEP + 3000, values: [9] }), false, "a repeat is ignored");
});

test("an outage in the live samples is a gap, and so is the empty bucket it leaves", () => {
  const b = buffer();
  b.load([bucket(0, 1)], T + 1000);
  b.push({ ts: T + 2000, values: [1] });
  b.push({ ts: T + 40_000, values: [2] });
  assert.equal(b.gaps, 1, "38 s without a sample at a 10 s step");
  b.push({ ts: T + 50_000, values: [3] });
  // Folded: buckets 0 and 4 are 40 s apart, more than a step and 5 s.
  assert.equal(b.gaps, 1);
  assert.equal(b.length, b.rowCount + 1);
});

test("the window keeps the span back from the newest row, plus one step", () => {
  const b = new SeriesBuffer(1, { capacity: 1000, gapMs: 5000 });
  b.setWindow(60_000, 1000);
  for (let s = 0; s < 200; s++) b.push({ ts: T + s * 1000, values: [s] });
  const [xs] = b.data();
  assert.equal(xs.length, 62, "60 s, one step of slack, and the newest");
  assert.equal(xs.at(-1), (T + 199_000) / 1000);
  b.setWindow(10_000, 1000);
  assert.equal(b.data()[0].length, 12, "a shorter range drops what is outside it");
});

test("the capacity bounds the rows whatever the window", () => {
  const b = new SeriesBuffer(2, { capacity: 50 });
  for (let s = 0; s < 120; s++) b.push({ ts: T + s, values: [s, null] });
  assert.equal(b.rowCount, 50);
  assert.equal(b.last(0), 119);
  assert.equal(b.last(1), null);
  b.setSeriesCount(3);
  assert.equal(b.data().length, 4, "time and three series");
});

test("rows older than the answer stay: a server that lost its history leaves a gap, not a blank", () => {
  const b = buffer();
  b.load([bucket(0, 1), bucket(1, 2)], T + 2 * STEP);
  // The server restarted in memory: it holds only what came after, from bucket 10 on.
  b.load([bucket(10, 5), bucket(11, 6)], T + 12 * STEP);
  assert.deepEqual(b.data()[1], [1, 2, null, 5, 6]);
  assert.equal(b.gaps, 1);
  // An answer with nothing in it keeps everything, live rows included.
  b.push({ ts: T + 12 * STEP + 500, values: [7] });
  b.load([], T + 12 * STEP + 100);
  assert.deepEqual(b.data()[1], [1, 2, null, 5, 6, 7]);
});
