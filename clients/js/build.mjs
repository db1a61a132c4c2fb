// Builds the package: ES modules with declarations into dist/, CommonJS with declarations into
// dist/cjs/ (whose package.json says so, for Node and for TypeScript's `require` resolution).
// Usage: node build.mjs
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

rmSync(join(root, "dist"), { recursive: true, force: true });
for (const project of ["tsconfig.json", "tsconfig.cjs.json"]) {
  const run = spawnSync(process.execPath, [tsc, "-p", join(root, project)], { stdio: "inherit" });
  if (run.status !== 0) {
    process.exit(run.status ?? 1);
  }
}
writeFileSync(join(root, "dist/cjs/package.json"), `${JSON.stringify({ type: "commonjs" })}\n`);
