// Test helpers for the livehub client integration tests: start and restart the server binary,
// publish and read history over HTTP, wait for conditions with a bound, and a small TCP proxy
// that can cut connections.
//
// The test script runs only `test/*.test.mjs`, so this file is not itself run as a test. The
// dashboard's browser tests (web/test) import it too.

import { spawn } from "node:child_process";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export const LIVEHUB_BIN = process.env.LIVEHUB_BIN ?? "/work/main/target/debug/livehub";

const running = new Set();
// Safety net only: tests stop their servers in after hooks. This catches a runner that dies.
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/** Resolves with the payload of the next `event` on `target` (a hub or a subscription). */
export function nextEvent(target, event, { filter = () => true, timeout = 10000, what } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeout} ms waiting for ${what ?? `event "${event}"`}`));
    }, timeout);
    const off = target.on(event, (payload) => {
      if (!filter(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/**
 * Polls `predicate` (sync or async) every 20 ms until it returns a truthy value, which it returns.
 * `what` (a string, or a function called on timeout) names the condition in the error.
 */
export async function waitFor(predicate, ms = 10000, what = "condition") {
  const deadline = Date.now() + ms;
  let lastError;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError ? ` (last error: ${lastError.message})` : "";
      const name = typeof what === "function" ? what() : what;
      throw new Error(`timed out after ${ms} ms waiting for ${name}${cause}`);
    }
    await sleep(20);
  }
}

/** Rejects if `promise` does not settle within `ms`. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port on 127.0.0.1 where nothing listens (right now). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// Spawns one server process; resolves with {proc, port, log} once it prints its listening URL,
// rejects if it exits first (for example: the port is still taken) or takes over 10 s.
function spawnServer(port, args) {
  const proc = spawn(LIVEHUB_BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--log", "info", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, NO_COLOR: "1", LIVEHUB_STORE: "memory" },
  });
  running.add(proc);
  const log = { text: "" };
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  exited.then(() => running.delete(proc));
  proc.exited = exited;
  return new Promise((resolve, reject) => {
    let listening = false;
    const fail = (why) => {
      clearTimeout(timer);
      proc.kill("SIGKILL");
      reject(new Error(`livehub ${why}; stderr:\n${log.text.slice(-2000)}`));
    };
    const timer = setTimeout(() => fail("did not print its listening URL within 10 s"), 10000);
    proc.once("error", (err) => fail(`could not start (${LIVEHUB_BIN}): ${err.message}`));
    proc.stderr.setEncoding("utf8");
    // Keep draining stderr for the whole life of the process, so it never blocks on a full pipe.
    proc.stderr.on("data", (chunk) => {
      log.text = (log.text + chunk).slice(-64 * 1024);
      const match = !listening && log.text.match(/http:\/\/([0-9.]+):(\d+)/);
      if (match) {
        listening = true;
        clearTimeout(timer);
        resolve({ proc, port: Number(match[2]), log });
      }
    });
    exited.then(({ code, signal }) => {
      if (!listening) fail(`exited before listening (code ${code}, signal ${signal})`);
    });
    // Never let the server itself keep the test process alive; after hooks stop it.
    proc.unref();
    proc.stderr.unref();
  });
}

/**
 * Starts `livehub serve --listen 127.0.0.1:PORT` (PORT 0 by default). Resolves with a handle
 * `{url, port, proc, log, stop(signal), restart()}`; `restart()` starts a new process on the same
 * port and updates the handle in place, so one `stop()` in an after hook covers restarts too.
 */
export async function startServer(args = [], { port = 0 } = {}) {
  const first = await spawnServer(port, args);
  const server = {
    url: `http://127.0.0.1:${first.port}`,
    port: first.port,
    proc: first.proc,
    log: first.log,
    /** Sends `signal` (SIGTERM by default) and waits for the exit, escalating to SIGKILL after 5 s. */
    async stop(signal = "SIGTERM") {
      const proc = server.proc;
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
    /** Starts a new process on the same port, retrying the bind for up to 5 s. */
    async restart() {
      await server.stop("SIGKILL");
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          const next = await spawnServer(server.port, args);
          server.proc = next.proc;
          server.log = next.log;
          return server;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await sleep(100);
        }
      }
    },
  };
  return server;
}

async function json(response, what) {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text}`);
  return JSON.parse(text);
}

/** POST /api/publish of one publication; resolves with {channel, offset, epoch, duplicate}. */
export async function publishHttp(url, channel, data, key) {
  const body = key === undefined ? { channel, data } : { channel, data, key };
  const response = await fetch(`${url}/api/publish`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return json(response, `publish to ${channel}`);
}

/** POST /api/publish of an array of {channel, data}; resolves with {results: [...]}. */
export async function publishBatchHttp(url, items) {
  const response = await fetch(`${url}/api/publish`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(items),
    signal: AbortSignal.timeout(5000),
  });
  return json(response, "batch publish");
}

/** GET /api/channels/{channel}/history?limit=1000; resolves with {channel, position, oldest, publications}. */
export async function history(url, channel) {
  const response = await fetch(`${url}/api/channels/${channel}/history?limit=1000`, {
    signal: AbortSignal.timeout(5000),
  });
  return json(response, `history of ${channel}`);
}

/**
 * A TCP proxy on 127.0.0.1:0 that forwards to 127.0.0.1:targetPort. With `swallowFirstAck`, the
 * first server-to-client chunk that contains `"type":"ack"` is not forwarded: both sockets of
 * that connection are destroyed instead (server WebSocket frames are unmasked, so the JSON shows).
 * `onConnection(n)` runs synchronously as the n-th client connection is accepted, before any of
 * its bytes reach the server. Resolves with {port, url, connections, dropAll(), close()}.
 */
export async function startProxy(targetPort, { swallowFirstAck = false, onConnection = () => {} } = {}) {
  const sockets = new Set();
  let swallowed = false;
  const proxy = { port: 0, url: "", connections: 0 };

  const server = net.createServer((client) => {
    proxy.connections++;
    onConnection(proxy.connections);
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on("error", destroyBoth);
      socket.on("close", destroyBoth);
    }
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (swallowFirstAck && !swallowed && chunk.includes('"type":"ack"')) {
        swallowed = true;
        destroyBoth();
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  proxy.port = server.address().port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  /** Destroys every connection open right now; new connections are accepted as before. */
  proxy.dropAll = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  /** Stops listening and drops every connection. */
  proxy.close = () =>
    new Promise((resolve) => {
      proxy.dropAll();
      server.close(() => resolve());
    });
  /** True once a server chunk with an ack has been swallowed. */
  Object.defineProperty(proxy, "swallowed", { get: () => swallowed });
  return proxy;
}
