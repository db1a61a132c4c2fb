// Builds the dashboard into three files the server embeds: index.html, app.js, app.css.
// Usage: node build.mjs [outdir]   (default: dist)
//
// The output must be byte-for-byte reproducible, because CI rebuilds into a temporary directory
// and diffs it against the committed dist/: no sourcemaps, no timestamps, no absolute paths, and
// esbuild runs with the working directory pinned to this folder.
import { build } from "esbuild";
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] ?? join(root, "dist"));

// esbuild keeps only /*! comments; the notices of what is bundled go in front instead.
const uplot = JSON.parse(await readFile(join(root, "node_modules/uplot/package.json"), "utf8"));
const NOTICE = `/*! livehub dashboard. Bundles uPlot ${uplot.version} (c) Leon Sorokin, MIT license, https://github.com/leeoniya/uPlot */`;

const common = {
  absWorkingDir: root,
  bundle: true,
  minify: true,
  sourcemap: false,
  charset: "utf8",
  legalComments: "eof",
  logLevel: "warning",
  target: ["es2022", "chrome100", "firefox100", "safari15"],
};

await mkdir(outdir, { recursive: true });

await build({
  ...common,
  entryPoints: ["src/main.ts"],
  outfile: join(outdir, "app.js"),
  format: "iife",
  platform: "browser",
  banner: { js: NOTICE },
});

await build({
  ...common,
  entryPoints: ["src/app.css"],
  outfile: join(outdir, "app.css"),
  loader: { ".css": "css" },
  banner: { css: NOTICE },
});

await copyFile(join(root, "src/index.html"), join(outdir, "index.html"));
