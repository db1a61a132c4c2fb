// The circuit breaker and close():
// - a hub pointed at a port where nothing listens opens its circuit after 3 failed rounds, and
//   once a server starts on that port, closes it again and connects;
// - close() on a connected hub sets state "disconnected", emits no further state changes, and
//   leaves nothing that keeps a Node process alive (checked in a child process per transport).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { LiveHub, LiveHubError } from "../dist/index.js";
import { freePort, startServer, waitFor, withTimeout } from "./harness.mjs";

test("the circuit opens while nothing listens and closes once the server is up", { timeout: 60000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  const port = await freePort();
  hub = new LiveHub(`http://127.0.0.1:${port}`, {
    WebSocket,
    backoff: { base: 50, cap: 200 },
    circuitBreaker: { failures: 3, cooldown: 1500 },
    openTimeout: 1000,
  });
  const circuits = [];
  hub.on("circuit", (c) => circuits.push(c.open));
  await waitFor(() => circuits.includes(true), 20000, "circuit {open: true}");

  server = await startServer([], { port });
  await waitFor(() => circuits.at(-1) === false && hub.state === "connected", 20000, "circuit {open: false} and state connected");
  assert.equal(circuits[0], true, `the first circuit event opens it (got ${circuits})`);
  assert.equal(hub.transport, "websocket");
});

test("close() on a connected hub: state disconnected, no further state events", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer();
  hub = new LiveHub(server.url, { WebSocket });
  hub.subscribe("close/x");
  await waitFor(() => hub.state === "connected", 10000, "state connected");

  const states = [];
  hub.on("state", (s) => states.push(s.state));
  hub.close();
  assert.equal(hub.state, "disconnected");
  await assert.rejects(hub.publish("close/x", 1), (err) => err instanceof LiveHubError && err.code === "closed");
  await sleep(500); // a window for stray events to show up; nothing is timed
  assert.ok(
    states.length <= 1 && states.every((s) => s === "disconnected"),
    `state events after close(): ${JSON.stringify(states)}`,
  );
  assert.equal(hub.state, "disconnected");
});

// Run in a child: connect on one transport with a subscription, close(), and let the process end by itself.
// If it is still alive 10 s later, it prints what keeps it alive and exits with code 3.
const CHILD = `
import WebSocket from "ws";
import { LiveHub } from "./dist/index.js";
setTimeout(() => {
  console.log("still alive after close(): " + JSON.stringify(process.getActiveResourcesInfo()));
  process.exit(3);
}, 10000).unref();
const hub = new LiveHub(process.env.LH_URL, { transports: [process.env.LH_TRANSPORT], WebSocket, pollInterval: 100 });
hub.subscribe("close/child");
const off = hub.on("state", ({ state }) => {
  if (state !== "connected") return;
  off();
  // A moment connected: the long poll is held, the stream open, the poll timer set.
  setTimeout(() => {
    hub.close();
    console.log("closed: " + hub.state);
  }, 300);
});
`;

for (const transport of ["websocket", "sse", "long-polling", "polling"]) {
  test(`${transport}: after close() nothing keeps the Node process alive`, { timeout: 30000 }, async (t) => {
    let server, child;
    t.after(async () => {
      child?.kill("SIGKILL");
      await server?.stop();
    });
    server = await startServer();
    child = spawn(process.execPath, ["--input-type=module", "-e", CHILD], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { ...process.env, LH_URL: server.url, LH_TRANSPORT: transport },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const code = await withTimeout(
      new Promise((resolve) => child.once("exit", (code) => resolve(code))),
      20000,
      "the child process to exit",
    );
    assert.equal(code, 0, `child exited with ${code}; output:\n${output}`);
    assert.match(output, /closed: disconnected/);
  });
}
