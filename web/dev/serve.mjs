// Preview server for the dashboard: serves dist/ like the livehub binary does (/, and the scripts
// and the stylesheet under /assets/) and proxies everything else (/ws, /sse, /poll, /api/*,
// /hubs/live, /mqtt, /health) to a livehub.
//
//   node dev/serve.mjs [--port 8088] [--livehub http://127.0.0.1:8080]
//
// Without --livehub it starts ../target/debug/livehub (LIVEHUB_BIN overrides) on a free port.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "8088" },
    livehub: { type: "string" },
  },
});

const PAGES = { "/": "index.html", "/index.html": "index.html" };
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

/** The file of dist/ and its type for `path`: the page, or a script or stylesheet under /assets/. */
function asset(path) {
  const name = PAGES[path] ?? (/^\/assets\/([\w.-]+\.(js|css))$/.exec(path)?.[1]);
  return name ? [name, TYPES[extname(name)]] : undefined;
}

const upstream = new URL(args.livehub ?? (await startLivehub()));

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  const file = asset(path);
  if (file && req.method === "GET") {
    // Read on every request, so that a rebuild shows on reload.
    const body = await readFile(join(dist, file[0])).catch(() => null);
    if (!body) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": file[1], "cache-control": "no-cache" });
    res.end(body);
    return;
  }
  const proxied = http.request(new URL(req.url ?? "/", upstream), { method: req.method, headers: { ...req.headers, host: upstream.host } }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  proxied.on("error", () => {
    if (!res.headersSent) {
      res.writeHead(502);
    }
    res.end();
  });
  res.on("close", () => proxied.destroy());
  req.pipe(proxied);
});

// WebSocket upgrades: replay the request line and headers upstream, then splice the sockets.
server.on("upgrade", (req, socket, head) => {
  const target = net.connect(Number(upstream.port), upstream.hostname, () => {
    const headers = Object.entries({ ...req.headers, host: upstream.host }).map(([k, v]) => `${k}: ${v}`).join("\r\n");
    target.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers}\r\n\r\n`);
    target.write(head);
    socket.pipe(target).pipe(socket);
  });
  target.on("error", () => socket.destroy());
  socket.on("error", () => target.destroy());
});

server.listen(Number(args.port), "127.0.0.1", () => {
  console.log(`dashboard at http://127.0.0.1:${server.address().port}/ (livehub ${upstream.origin})`);
});

/** Starts the debug binary on a free loopback port and resolves to its address. */
function startLivehub() {
  const bin = process.env.LIVEHUB_BIN ?? join(here, "..", "..", "target", "debug", "livehub");
  const child = spawn(bin, ["serve", "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, LIVEHUB_STORE: process.env.LIVEHUB_STORE ?? "memory", LIVEHUB_MQTT_LISTEN: "127.0.0.1:0" },
  });
  process.on("exit", () => child.kill());
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => process.exit(0));
  }
  return new Promise((resolve, reject) => {
    let log = "";
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const found = /http:\/\/127\.0\.0\.1:\d+/.exec(log);
      if (found) {
        child.stderr.removeAllListeners("data");
        child.stderr.resume();
        resolve(found[0]);
      }
    });
    child.on("exit", (code) => reject(new Error(`livehub exited with ${code}: ${log}`)));
  });
}
