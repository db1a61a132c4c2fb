// Builds the dashboard into the files the server embeds: index.html, app.css, the ES module
// app.js, and the chunks it imports: the code of SignalR, its MessagePack protocol and MQTT.js is
// loaded with import() only when one of their transports is picked, and esbuild's code splitting
// puts it, and the modules shared with app.js, in files of their own.
// Usage: node build.mjs [outdir]   (default: dist)
//
// The output must be byte-for-byte reproducible, because CI rebuilds into a temporary directory
// and diffs it against the committed dist/: no sourcemaps, no timestamps, no absolute paths, and
// esbuild runs with the working directory pinned to this folder. Chunk names carry a hash of
// their content; the files of an older build are removed first so that no stale chunk stays.
import { build } from "esbuild";
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] ?? join(root, "dist"));

// esbuild keeps only /*! comments; the notices of what is bundled go in front of each file
// instead, naming the packages that file holds (read from esbuild's metafile).
const version = async (name) => JSON.parse(await readFile(join(root, "node_modules", name, "package.json"), "utf8")).version;
const NOTICES = {
  uplot: `uPlot ${await version("uplot")} (c) Leon Sorokin, MIT license, https://github.com/leeoniya/uPlot`,
  "@microsoft/signalr": `@microsoft/signalr ${await version("@microsoft/signalr")} (c) .NET Foundation, MIT license, https://github.com/dotnet/aspnetcore`,
  "@microsoft/signalr-protocol-msgpack": `@microsoft/signalr-protocol-msgpack ${await version("@microsoft/signalr-protocol-msgpack")} (c) .NET Foundation, MIT license, https://github.com/dotnet/aspnetcore`,
  "@msgpack/msgpack": `@msgpack/msgpack ${await version("@msgpack/msgpack")} (c) The MessagePack community, ISC license, https://github.com/msgpack/msgpack-javascript`,
  mqtt: `MQTT.js ${await version("mqtt")}, MIT license, https://github.com/mqttjs/MQTT.js (its own bundle's notices are at the end)`,
};

/** The comment in front of a file that bundles `packages`. */
function notice(packages) {
  const named = [...packages].sort().map((p) => {
    if (!(p in NOTICES)) {
      throw new Error(`build.mjs: ${p} is bundled but has no notice in NOTICES`);
    }
    return NOTICES[p];
  });
  return named.length ? `/*! livehub dashboard. Bundles ${named.join("; ")} */` : "/*! livehub dashboard */";
}

/** The packages whose files esbuild put in an output, from its metafile entry. */
function packagesOf(output) {
  const names = new Set();
  for (const input of Object.keys(output.inputs)) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) {
      names.add(match[1]);
    }
  }
  return names;
}

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
// Only what a build writes is removed: the directory may be one the caller also uses.
for (const name of await readdir(outdir)) {
  if (/\.(js|css|html)$/.test(name)) {
    await rm(join(outdir, name));
  }
}

const scripts = await build({
  ...common,
  entryPoints: { app: "src/main.ts" },
  outdir,
  entryNames: "[name]",
  // The modules loaded with import() (and what they share) go into chunks named by their hash.
  chunkNames: "chunk-[hash]",
  format: "esm",
  splitting: true,
  platform: "browser",
  metafile: true,
  write: false,
});
for (const file of scripts.outputFiles) {
  const output = scripts.metafile.outputs[relative(root, file.path).split(sep).join("/")];
  if (!output) {
    throw new Error(`build.mjs: no metafile entry for ${file.path}`);
  }
  await writeFile(file.path, `${notice(packagesOf(output))}\n${file.text}`);
}

await build({
  ...common,
  entryPoints: ["src/app.css"],
  outfile: join(outdir, "app.css"),
  loader: { ".css": "css" },
  banner: { css: notice(["uplot"]) },
});

await copyFile(join(root, "src/index.html"), join(outdir, "index.html"));
