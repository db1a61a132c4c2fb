// Presence counts every client on every transport (issue 19: the dashboard said 0 clients for
// long-polling and polling users): two hubs in one process, behind one address and one
// User-Agent, as two tabs of one browser are, count as two on each HTTP transport, because each
// hub names itself with the `client` query parameter.

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { LiveHub } from "../dist/index.js";
import { startServer, waitFor } from "./harness.mjs";

for (const transport of ["long-polling", "polling"]) {
  test(`${transport}: two hubs from one address and User-Agent count as two clients`, { timeout: 30000 }, async (t) => {
    const hubs = [];
    let server;
    t.after(async () => {
      for (const hub of hubs) hub.close();
      await server?.stop();
    });
    server = await startServer(["--no-sources"]);
    for (let i = 0; i < 2; i++) {
      const hub = new LiveHub(server.url, { transports: [transport], pollInterval: 100, longPollTimeout: 1 });
      hub.subscribe("presence/tab");
      hubs.push(hub);
    }
    // A WebSocket watcher, which counts itself too.
    const watcher = new LiveHub(server.url, { WebSocket, transports: ["websocket"] });
    hubs.push(watcher);
    let presence = null;
    watcher.subscribe("$sys/presence", { latest: true }).on("message", (m) => (presence = m.data));
    await waitFor(() => hubs.every((h) => h.state === "connected"), 10000, "every hub connected");
    await waitFor(() => presence?.transports?.[transport] === 2, 10000, `presence counting two ${transport} clients`).catch((err) => {
      throw new Error(`${err.message}; the last presence: ${JSON.stringify(presence)}`);
    });
    assert.equal(presence.transports.websocket, 1);
    assert.equal(presence.connections, 3);
  });
}
