// A publish whose ack is lost is retried after the reconnect and stored once: a proxy cuts the
// WebSocket connection instead of forwarding the first ack, the hub reconnects and retries, and
// the server answers duplicate: true; the channel's history holds exactly one publication.

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { LiveHub } from "../dist/index.js";
import { history, startProxy, startServer, waitFor, withTimeout } from "./harness.mjs";

test("a publish retried across a reconnect is stored once", { timeout: 30000 }, async (t) => {
  let server, proxy, hub;
  t.after(async () => {
    hub?.close();
    await proxy?.close();
    await server?.stop();
  });
  server = await startServer();
  proxy = await startProxy(server.port, { swallowFirstAck: true });
  hub = new LiveHub(proxy.url, { transports: ["websocket"], WebSocket, backoff: { base: 100, cap: 500 } });
  await waitFor(() => hub.state === "connected", 10000, "state connected");

  const ack = await withTimeout(hub.publish("retry/x", { v: 1 }), 15000, "the publish to resolve");
  assert.ok(proxy.swallowed, "the proxy swallowed the first ack");
  assert.ok(proxy.connections >= 2, "the hub reconnected");
  assert.equal(ack.channel, "retry/x");
  assert.equal(ack.offset, 1);
  assert.equal(ack.duplicate, true);

  const stored = (await history(server.url, "retry/x")).publications;
  assert.deepEqual(
    stored.map((p) => [p.offset, p.data]),
    [[1, { v: 1 }]],
  );
  assert.equal(stored[0].epoch, ack.epoch);
});
