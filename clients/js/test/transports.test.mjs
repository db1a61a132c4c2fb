// Each transport pinned alone (websocket, sse, long-polling, polling): the hub connects on it and
// reports "subscribed", delivers publications made over HTTP in offset order, `hub.publish`
// resolves with an ack that matches the server's history, `latest: true` delivers the current
// value first, a subscription made while the transport is still opening is not lost, publishing to the read-only "$sys/presence" rejects with LiveHubError
// "read_only_channel", and a hub with no subscription still connects and publishes.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { LiveHub, LiveHubError } from "../dist/index.js";
import { history, nextEvent, publishHttp, startProxy, startServer, waitFor, withTimeout } from "./harness.mjs";

const TRANSPORTS = ["websocket", "sse", "long-polling", "polling"];

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

// A hub pinned to `transport`, closed when the test ends.
function pinnedHub(t, transport) {
  const hub = new LiveHub(server.url, { transports: [transport], WebSocket, pollInterval: 100 });
  t.after(() => hub.close());
  return hub;
}

for (const transport of TRANSPORTS) {
  describe(transport, () => {
    test('"subscribed" arrives for a channel with no publications yet', { timeout: 30000 }, async (t) => {
      const hub = pinnedHub(t, transport);
      const sub = hub.subscribe(`tr/${transport}/empty`);
      await nextEvent(sub, "subscribed", { what: '"subscribed"' });
      await waitFor(() => hub.state === "connected", 10000, "state connected");
      assert.equal(hub.transport, transport);
    });

    test("delivers HTTP publications in order; publish ack matches history", { timeout: 30000 }, async (t) => {
      // The channel has a value, so `latest: true` shows when the subscription is live on every
      // transport (without relying on "subscribed", tested above).
      const channel = `tr/${transport}/stream`;
      await publishHttp(server.url, channel, { n: 0 });
      const hub = pinnedHub(t, transport);
      const messages = [];
      hub.subscribe(channel, { latest: true }).on("message", (m) => messages.push(m));
      await waitFor(() => messages.length >= 1, 10000, "the latest value");
      await waitFor(() => hub.state === "connected", 10000, "state connected");
      assert.equal(hub.transport, transport);

      for (let n = 1; n < 5; n++) await publishHttp(server.url, channel, { n });
      await waitFor(() => messages.length >= 5, 10000, "5 messages");
      assert.deepEqual(
        messages.map((m) => [m.channel, m.offset, m.data]),
        [0, 1, 2, 3, 4].map((n) => [channel, n + 1, { n }]),
      );

      const ack = await withTimeout(hub.publish(channel, { n: 5, via: "client" }), 10000, "the publish ack");
      assert.equal(ack.channel, channel);
      assert.equal(ack.offset, 6);
      assert.equal(ack.duplicate, false);
      const stored = (await history(server.url, channel)).publications;
      assert.equal(stored.length, 6);
      const match = stored.find((p) => p.offset === ack.offset);
      assert.ok(match, `history has offset ${ack.offset}`);
      assert.equal(match.epoch, ack.epoch);
      assert.deepEqual(match.data, { n: 5, via: "client" });

      // The hub's own publication comes back on the subscription, after the others.
      await waitFor(() => messages.length >= 6, 10000, "the hub's own publication");
      assert.deepEqual(messages.map((m) => m.offset), [1, 2, 3, 4, 5, 6]);
      assert.ok(messages.every((m) => m.epoch === ack.epoch && typeof m.ts === "number"));
    });

    test("a subscription made while the transport is still opening reaches the server", { timeout: 30000 }, async (t) => {
      const channel = `tr/${transport}/during-open`;
      await publishHttp(server.url, channel, { n: 0 });
      const messages = [];
      let hub;
      // The proxy calls back as the transport's first connection arrives, before the server has
      // seen a byte of it: the open is in flight, with the (empty) list of that moment.
      const proxy = await startProxy(server.port, {
        onConnection: (n) => {
          if (n !== 1) return;
          assert.notEqual(hub.state, "connected", "the subscribe must race the open");
          hub.subscribe(channel, { latest: true }).on("message", (m) => messages.push(m));
        },
      });
      t.after(() => proxy.close());
      hub = new LiveHub(proxy.url, { transports: [transport], WebSocket, pollInterval: 100 });
      t.after(() => hub.close());
      await waitFor(() => messages.length >= 1, 10000, "the latest value of a channel subscribed during the open");
      await publishHttp(server.url, channel, { n: 1 });
      await waitFor(() => messages.length >= 2, 10000, "a live publication");
      assert.deepEqual(messages.map((m) => m.data), [{ n: 0 }, { n: 1 }]);
    });

    test("latest: true delivers the current value first", { timeout: 30000 }, async (t) => {
      const channel = `tr/${transport}/latest`;
      await publishHttp(server.url, channel, { v: "old" });
      await publishHttp(server.url, channel, { v: "current" });
      const hub = pinnedHub(t, transport);
      const messages = [];
      hub.subscribe(channel, { latest: true }).on("message", (m) => messages.push(m));
      await waitFor(() => messages.length >= 1, 10000, "the latest value");
      await publishHttp(server.url, channel, { v: "next" });
      await waitFor(() => messages.length >= 2, 10000, "the next publication");
      assert.deepEqual(
        messages.map((m) => [m.offset, m.data]),
        [[2, { v: "current" }], [3, { v: "next" }]],
      );
    });

    test('publishing to "$sys/presence" rejects with read_only_channel', { timeout: 30000 }, async (t) => {
      const hub = pinnedHub(t, transport);
      hub.subscribe(`tr/${transport}/presence-test`); // SSE and long polling need a channel
      await waitFor(() => hub.state === "connected", 10000, "state connected");
      await assert.rejects(withTimeout(hub.publish("$sys/presence", { x: 1 }), 10000, "the publish to settle"), (err) => {
        assert.ok(err instanceof LiveHubError, `a LiveHubError, got ${err}`);
        assert.equal(err.code, "read_only_channel");
        return true;
      });
    });

    test("a hub with no subscription connects and publishes", { timeout: 30000 }, async (t) => {
      const hub = pinnedHub(t, transport);
      await waitFor(() => hub.state === "connected", 10000, () => `state connected (state: ${hub.state})`);
      const ack = await withTimeout(hub.publish(`tr/${transport}/publish-only`, 1), 10000, "the publish ack");
      assert.equal(ack.offset, 1);
    });
  });
}
