// A buffered subscription ({buffer: 100}) hands messages over in "batch" calls: 50 publications
// made in one HTTP request arrive in fewer than 50 calls, and together they are all 50, in order.

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { LiveHub } from "../dist/index.js";
import { nextEvent, publishBatchHttp, startServer, waitFor } from "./harness.mjs";

test("buffer: 100 delivers 50 quick publications in fewer batches, all in order", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer();
  hub = new LiveHub(server.url, { WebSocket });
  const sub = hub.subscribe("buf/x", { buffer: 100 });
  const batches = [];
  sub.on("batch", (messages) => batches.push(messages));
  await nextEvent(sub, "subscribed", { what: '"subscribed"' });

  const items = Array.from({ length: 50 }, (_, n) => ({ channel: "buf/x", data: { n } }));
  const { results } = await publishBatchHttp(server.url, items);
  assert.equal(results.length, 50);

  const all = () => batches.flat();
  await waitFor(() => all().length >= 50, 10000, "50 buffered messages");
  assert.ok(batches.length < 50, `fewer than 50 batch calls (got ${batches.length})`);
  assert.ok(batches.every((b) => Array.isArray(b) && b.length > 0), "no empty batch");
  assert.deepEqual(
    all().map((m) => [m.channel, m.offset, m.data]),
    items.map((item, n) => ["buf/x", n + 1, { n }]),
  );
});
