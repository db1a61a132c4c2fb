// Recovery on a WebSocket hub while a steady stream is published over HTTP (every ~20 ms):
// (a) the server is SIGKILLed mid-stream and restarted on the same port: the first epoch arrives
//     as offsets 1..k without gaps, every publication the restarted server holds arrives, nothing
//     twice or out of order, and the subscription reports "unrecovered";
// (b) the connection is cut by a proxy, the server keeps running: after the reconnect the hub has
//     every offset exactly once, in order, and the re-subscribe says recovered: true.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { LiveHub } from "../dist/index.js";
import { history, publishHttp, startProxy, startServer, waitFor } from "./harness.mjs";

// Publishes {n: 0}, {n: 1}, ... to `channel` every `every` ms, ignoring errors (the server may be down).
function startPublisher(url, channel, every = 20) {
  let stopped = false;
  let n = 0;
  const done = (async () => {
    while (!stopped) {
      await publishHttp(url, channel, { n: n++ }).catch(() => {});
      await sleep(every);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

// A WebSocket hub subscribed to `channel`, recording what the subscription reports.
function watch(url, channel) {
  const hub = new LiveHub(url, { transports: ["websocket"], WebSocket, backoff: { base: 100, cap: 500 } });
  const sub = hub.subscribe(channel);
  const seen = { hub, received: [], subscribed: [], unrecovered: [] };
  sub.on("message", (m) => seen.received.push(m));
  sub.on("subscribed", (info) => seen.subscribed.push(info));
  sub.on("unrecovered", (info) => seen.unrecovered.push(info));
  return seen;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function assertIncreasing(messages, what) {
  for (let i = 1; i < messages.length; i++) {
    assert.ok(
      messages[i].offset > messages[i - 1].offset,
      `${what}: offset ${messages[i].offset} arrived after ${messages[i - 1].offset}`,
    );
  }
}

test("server killed (SIGKILL) and restarted mid-stream: no gaps, no duplicates, unrecovered reported", { timeout: 60000 }, async (t) => {
  let server, watcher, publisher;
  t.after(async () => {
    await publisher?.stop();
    watcher?.hub.close();
    await server?.stop();
  });
  const channel = "rec/steady";
  server = await startServer(["--history-size", "1000"]);
  watcher = watch(server.url, channel);
  const { received, subscribed, unrecovered } = watcher;
  await waitFor(() => subscribed.length >= 1, 10000, "the first subscribe");

  publisher = startPublisher(server.url, channel);
  await waitFor(() => received.length >= 20, 10000, "20 messages before the kill");
  await server.stop("SIGKILL");
  const epoch1 = received[0].epoch;
  await sleep(500);
  await server.restart();

  const inNewEpoch = () => received.filter((m) => m.epoch !== epoch1).length;
  await waitFor(() => inNewEpoch() > 0, 15000, "messages of the restarted server");
  const soFar = inNewEpoch();
  await waitFor(() => inNewEpoch() >= soFar + 10, 10000, "10 more live messages after the restart");
  await publisher.stop();

  const stored = (await history(server.url, channel)).publications;
  assert.ok(stored.length > 0, "the restarted server holds publications");
  const epoch2 = stored[0].epoch;
  assert.notEqual(epoch2, epoch1, "the restart changed the epoch");
  const lastStored = stored.at(-1).offset;
  await waitFor(
    () => received.some((m) => m.epoch === epoch2 && m.offset === lastStored),
    10000,
    `offset ${lastStored} of the new epoch`,
  );

  const first = received.filter((m) => m.epoch === epoch1);
  const second = received.filter((m) => m.epoch === epoch2);
  assert.equal(first.length + second.length, received.length, "only the two epochs");
  assert.ok(
    received.findLastIndex((m) => m.epoch === epoch1) < received.findIndex((m) => m.epoch === epoch2),
    "the first epoch ends before the second begins",
  );
  assertIncreasing(first, "first epoch");
  assertIncreasing(second, "second epoch");
  assert.deepEqual(first.map((m) => m.offset), range(1, first.length), "first epoch: offsets 1..k");
  assert.deepEqual(
    second.map((m) => [m.offset, m.data]),
    stored.map((p) => [p.offset, p.data]),
    "second epoch: exactly what the restarted server holds",
  );
  assert.ok(
    unrecovered.some((info) => info.channel === channel),
    `an "unrecovered" event for ${channel} (got ${JSON.stringify(unrecovered)})`,
  );
});

test("WebSocket connection dropped, server still up: every offset exactly once, recovered: true", { timeout: 60000 }, async (t) => {
  let server, proxy, watcher, publisher;
  t.after(async () => {
    await publisher?.stop();
    watcher?.hub.close();
    await proxy?.close();
    await server?.stop();
  });
  const channel = "rec/drop";
  server = await startServer();
  proxy = await startProxy(server.port);
  watcher = watch(proxy.url, channel);
  const { received, subscribed, unrecovered } = watcher;
  await waitFor(() => subscribed.length >= 1, 10000, "the first subscribe");

  publisher = startPublisher(server.url, channel);
  await waitFor(() => received.length >= 15, 10000, "15 messages before the drop");
  proxy.dropAll();
  await waitFor(() => subscribed.length >= 2, 10000, "the re-subscribe after the drop");
  const soFar = received.length;
  await waitFor(() => received.length >= soFar + 10, 10000, "10 more messages after the reconnect");
  await publisher.stop();

  const stored = (await history(server.url, channel)).publications;
  const lastStored = stored.at(-1).offset;
  await waitFor(() => received.at(-1).offset >= lastStored, 10000, `offset ${lastStored}`);

  assert.ok(proxy.connections >= 2, "the hub reconnected through the proxy");
  assert.deepEqual(received.map((m) => m.offset), range(1, lastStored), "every offset once, in order");
  assert.deepEqual(
    received.map((m) => m.data),
    stored.map((p) => p.data),
  );
  assert.equal(subscribed[0].recovered, false, "the first subscribe had nothing to recover");
  assert.equal(subscribed[1].recovered, true, "the re-subscribe recovered");
  assert.deepEqual(unrecovered, []);
});
