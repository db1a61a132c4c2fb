// Channel names with awkward characters (commas, backslashes, spaces, quotes, line breaks, `%`,
// URL syntax, non-ASCII, empty levels, a name ending in /history) on each transport: the hub
// subscribes, hears "subscribed" and receives HTTP publications with the right channel. Cursors
// the client builds for such names resume on the server and read back; the names "." and ".."
// are refused by polling, which cannot put them in a URL path.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { LiveHub, encodeCursor } from "../dist/index.js";
import { decodeCursor } from "../dist/cursor.js";
import { nextEvent, publishHttp, startServer, waitFor } from "./harness.mjs";

const TRANSPORTS = ["websocket", "sse", "long-polling", "polling"];
const NAMES = ["a/b,c", "é/ü", "a//b", "x y", 'q"uote', "line\nbreak", "back\\slash", "100%/?&=", "/lead", "x/history"];

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

for (const transport of TRANSPORTS) {
  test(`${transport}: publications on awkward names arrive with their names`, { timeout: 30000 }, async (t) => {
    const hub = new LiveHub(server.url, { transports: [transport], WebSocket, pollInterval: 100 });
    t.after(() => hub.close());
    const names = NAMES.map((n) => `${transport}/${n}`);
    const received = new Map(names.map((n) => [n, []]));
    const subscribed = names.map((name) => {
      const sub = hub.subscribe(name);
      sub.on("message", (m) => received.get(name).push(m));
      return nextEvent(sub, "subscribed", { what: `"subscribed" for ${JSON.stringify(name)}` });
    });
    const infos = await Promise.all(subscribed);
    assert.deepEqual(infos.map((i) => i.channel), names);

    for (const [i, name] of names.entries()) {
      const ack = await publishHttp(server.url, name, { i });
      assert.equal(ack.channel, name);
    }
    await waitFor(() => [...received.values()].every((list) => list.length >= 1), 10000, "a message on every name");
    for (const [i, name] of names.entries()) {
      assert.deepEqual(received.get(name).map((m) => [m.channel, m.data]), [[name, { i }]], JSON.stringify(name));
    }
  });
}

test("cursors built by the client for awkward names resume on the server", { timeout: 30000 }, async () => {
  const names = NAMES.map((n) => `cursor/${n}`);
  const positions = new Map();
  for (const name of names) {
    const first = await publishHttp(server.url, name, { n: 1 });
    positions.set(name, { offset: first.offset, epoch: first.epoch });
    await publishHttp(server.url, name, { n: 2 });
  }
  const cursor = encodeCursor(positions);
  assert.deepEqual(decodeCursor(cursor), positions);

  const params = new URLSearchParams({ timeout: "0", cursor });
  // One comma-separated list, as docs/protocol.md describes: commas and backslashes escaped.
  params.append("channel", names.map((n) => n.replace(/[\\,]/g, (c) => `\\${c}`)).join(","));
  const response = await fetch(`${server.url}/poll?${params}`, { signal: AbortSignal.timeout(5000) });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.deepEqual(body.messages.map((m) => [m.channel, m.data.n]), names.map((n) => [n, 2]));
  for (const name of names) {
    assert.equal(body.channels[name]?.recovered, true, JSON.stringify(name));
  }
  const next = decodeCursor(body.cursor);
  assert.deepEqual([...next.keys()].sort(), [...names].sort());
  assert.ok([...next.values()].every((p) => p.offset === 2));
});

test("polling refuses the names . and .., which no URL path can carry", { timeout: 30000 }, async (t) => {
  const hub = new LiveHub(server.url, { transports: ["polling"], pollInterval: 100 });
  t.after(() => hub.close());
  for (const name of [".", ".."]) {
    const error = await nextEvent(hub.subscribe(name), "error", { what: `an error for ${name}` });
    assert.equal(error.code, "unsupported");
  }
});
