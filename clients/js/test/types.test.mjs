// The typings under `tsc --strict` (test/types/strict.ts): the `ws` constructor is accepted
// without a cast, `subscribe<T>()` types `data`, and the status, fallback and recovery types are
// exported.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

test("test/types/strict.ts type-checks under tsc --strict", { timeout: 60000 }, () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const project = fileURLToPath(new URL("types/tsconfig.json", import.meta.url));
  const run = spawnSync(process.execPath, [tsc, "-p", project], { encoding: "utf8" });
  assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`);
});
