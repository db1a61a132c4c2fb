// The dashboard's formatting (src/format.ts), bundled by esbuild as the dashboard is: a delayed
// vehicle never shows "+0 min" (issue 19), nor "+0 s" or "+60 s".

import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { build } from "esbuild";

const bundle = await build({
  entryPoints: [path.join(import.meta.dirname, "../src/format.ts")],
  bundle: true,
  format: "esm",
  write: false,
  logLevel: "silent",
});
const { lateness } = await import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString("base64")}`);

test("a delay reads on time, in seconds under a minute, then in minutes; never +0 or +60 s", () => {
  const table = [
    [0, "on time"],
    [-5, "on time"],
    [0.3, "on time"],
    [Number.NaN, "on time"],
    [0.6, "+1 s"],
    [12, "+12 s"],
    [29.4, "+29 s"],
    [59.4, "+59 s"],
    [59.6, "+1 min"],
    [60, "+1 min"],
    [89, "+1 min"],
    [90, "+2 min"],
    [185, "+3 min"],
    [3600, "+60 min"],
  ];
  for (const [secs, text] of table) {
    assert.equal(lateness(secs), text, `${secs} s`);
  }
  for (let tenths = 0; tenths <= 6000; tenths++) {
    assert.doesNotMatch(lateness(tenths / 10), /^\+0 |^\+60 s$/, `${tenths / 10} s`);
  }
});
