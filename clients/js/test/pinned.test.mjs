// A pinned transport the server disabled falls back to the others and says why (`fallback`), and
// SSE coalesces subscription changes: 50 subscriptions made one by one open one stream.

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { LiveHub } from "../dist/index.js";
import { nextEvent, publishHttp, startServer, waitFor } from "./harness.mjs";

test("pinned to sse on a server with sse disabled: `fallback`, then connected on websocket", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer(["--disable", "sse"]);
  hub = new LiveHub(server.url, { WebSocket, transports: ["sse"], autoConnect: false });
  const fallback = nextEvent(hub, "fallback");
  const messages = [];
  hub.subscribe("pinned/x").on("message", (m) => messages.push(m.data));
  hub.connect();
  const info = await fallback;
  assert.equal(info.from, "sse");
  assert.equal(info.code, "transport_disabled");
  assert.match(info.reason, /sse is disabled/);
  assert.deepEqual(info.to, ["websocket", "long-polling", "polling"]);
  await waitFor(() => hub.state === "connected", 10000, "state connected");
  assert.equal(hub.transport, "websocket");
  await publishHttp(server.url, "pinned/x", "after");
  await waitFor(() => messages.length === 1, 5000, "a message on the fallback transport");
});

test("pinned to websocket on a server with websocket disabled: `fallback`, then connected on sse", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer(["--disable", "websocket"]);
  hub = new LiveHub(server.url, { WebSocket, transports: ["websocket"], autoConnect: false });
  const fallback = nextEvent(hub, "fallback");
  hub.connect();
  const info = await fallback;
  assert.equal(info.from, "websocket");
  assert.equal(info.code, "transport_disabled");
  assert.match(info.reason, /websocket is disabled/);
  await waitFor(() => hub.state === "connected", 10000, "state connected");
  assert.equal(hub.transport, "sse");
});

/** A fetch that counts the SSE streams the client opens. */
function countingFetch() {
  const counter = { streams: 0 };
  counter.fetch = (url, init) => {
    if (String(url).includes("/sse?")) counter.streams++;
    return fetch(url, init);
  };
  return counter;
}

test("sse: 50 subscriptions made one by one on a live stream reopen it once", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer();
  const counter = countingFetch();
  hub = new LiveHub(server.url, { transports: ["sse"], fetch: counter.fetch });
  hub.subscribe("board/0");
  await waitFor(() => hub.state === "connected", 10000, "state connected");
  assert.equal(counter.streams, 1);
  const seen = new Set();
  for (let i = 1; i <= 50; i++) {
    hub.subscribe(`board/${i}`).on("subscribed", (info) => seen.add(info.channel));
  }
  await waitFor(() => seen.size === 50, 10000, () => `all 50 subscribed (${seen.size})`);
  assert.equal(counter.streams, 2, "one stream to open, one reopen for all 50");
  await publishHttp(server.url, "board/50", "last");
  await waitFor(async () => (await fetch(`${server.url}/api/presence`).then((r) => r.json())).channels["board/50"] === 1, 5000, "the server sees board/50");
});

test("sse: 50 subscriptions before the first connect open one stream", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer();
  const counter = countingFetch();
  hub = new LiveHub(server.url, { transports: ["sse"], fetch: counter.fetch });
  const seen = new Set();
  for (let i = 0; i < 50; i++) {
    hub.subscribe(`board/${i}`).on("subscribed", (info) => seen.add(info.channel));
  }
  await waitFor(() => seen.size === 50, 10000, () => `all 50 subscribed (${seen.size})`);
  assert.equal(counter.streams, 1);
});
