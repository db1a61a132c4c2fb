// Transport fallback: with the default transport order, a hub falls back past the transports the
// server has switched off (they answer 404 transport_disabled) and receives messages on the first
// one that works.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { LiveHub } from "../dist/index.js";
import { publishHttp, startServer, waitFor } from "./harness.mjs";

const CASES = [
  { disable: "websocket", expect: "sse" },
  { disable: "websocket,sse", expect: "long-polling" },
  { disable: "websocket,sse,long-polling", expect: "polling" },
];

for (const { disable, expect } of CASES) {
  test(`--disable ${disable}: the default client ends up on ${expect}`, { timeout: 30000 }, async (t) => {
    let server, hub;
    t.after(async () => {
      hub?.close();
      await server?.stop();
    });
    server = await startServer(["--disable", disable]);
    // A value published first, and `latest: true`, show when the subscription is live.
    await publishHttp(server.url, "fallback/x", { before: true });
    hub = new LiveHub(server.url, { WebSocket, openTimeout: 2000, pollInterval: 100 });
    const messages = [];
    hub.subscribe("fallback/x", { latest: true }).on("message", (m) => messages.push(m));
    await waitFor(() => messages.length >= 1, 15000, "the latest value");
    await waitFor(() => hub.state === "connected", 10000, "state connected");
    assert.equal(hub.transport, expect);

    await publishHttp(server.url, "fallback/x", { hello: expect });
    await waitFor(() => messages.length >= 2, 10000, "the next message");
    assert.deepEqual(
      messages.map((m) => [m.offset, m.data]),
      [[1, { before: true }], [2, { hello: expect }]],
    );
  });
}

test("--disable websocket: a hub that subscribes a moment after construction also ends up on sse", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer(["--disable", "websocket"]);
  await publishHttp(server.url, "fallback/late", { before: true });
  hub = new LiveHub(server.url, { WebSocket, openTimeout: 2000, pollInterval: 100 });
  await sleep(300); // the hub starts connecting before anything is subscribed
  const messages = [];
  hub.subscribe("fallback/late", { latest: true }).on("message", (m) => messages.push(m));
  await waitFor(() => messages.length >= 1, 15000, "the latest value");
  await waitFor(() => hub.state === "connected", 10000, "state connected");
  assert.equal(hub.transport, "sse");
});
