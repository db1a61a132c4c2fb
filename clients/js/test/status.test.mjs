// When the server goes away, with the default reconnection settings:
// - a 15 s outage: `hub.status` says `reconnecting` and `staleSince` within 2 s of the stop, a
//   countdown (`retryAt`) while waiting, and the hub is connected again within 3 s of the
//   server's return (the breaker's open time is capped at 5 s and /health probes end it early);
// - retryNow() ends a long wait at once;
// - `recovery` says "not-needed" for a first subscription, "recovered" after a reconnect that
//   lost nothing, and "unrecovered" after a restart that lost the history.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { LiveHub } from "../dist/index.js";
import { freePort, nextEvent, publishHttp, startServer, startProxy, waitFor } from "./harness.mjs";

test("a 15 s outage: stale within 2 s, a countdown, and connected within 3 s of the return", { timeout: 60000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  server = await startServer();
  hub = new LiveHub(server.url, { WebSocket });
  hub.subscribe("status/outage");
  await waitFor(() => hub.state === "connected", 10000, "state connected");
  assert.equal(hub.status.staleSince, null);
  const statuses = [];
  hub.on("status", (s) => statuses.push({ ...s, at: Date.now() }));

  const stoppedAt = Date.now();
  await server.stop("SIGKILL");
  await waitFor(() => hub.status.staleSince !== null, 2000, "staleSince within 2 s of the stop");
  assert.ok(hub.status.staleSince >= stoppedAt && hub.status.staleSince <= Date.now(), "staleSince is when the connection was lost");
  assert.notEqual(hub.status.state, "connected");
  await waitFor(() => hub.status.retryAt !== null, 5000, "a retryAt to count down to");
  assert.ok(hub.status.retryAt > Date.now() - 100, "retryAt lies ahead");

  await sleep(15000 - (Date.now() - stoppedAt));
  const deadOnes = statuses.filter((s) => s.retryAt !== null).map((s) => s.retryAt - s.at);
  assert.ok(deadOnes.length >= 3, `several waits during the outage (${deadOnes})`);
  assert.ok(Math.max(...deadOnes) <= 5000, `no wait over the 5 s cap: ${deadOnes}`);

  const back = await startServer([], { port: server.port });
  server.proc = back.proc;
  const returned = Date.now();
  await waitFor(() => hub.state === "connected", 3000, "connected within 3 s of the server's return");
  const took = Date.now() - returned;
  assert.equal(hub.status.staleSince, null, "not stale once connected");
  assert.equal(hub.status.retryAt, null);
  t.diagnostic(`reconnected ${took} ms after the server returned`);
});

test("retryNow() ends a long wait and connects at once", { timeout: 30000 }, async (t) => {
  let server, hub;
  t.after(async () => {
    hub?.close();
    await server?.stop();
  });
  const port = await freePort();
  hub = new LiveHub(`http://127.0.0.1:${port}`, {
    WebSocket,
    circuitBreaker: { failures: 1, base: 60000, cap: 60000, probeEvery: 0 },
  });
  await waitFor(() => hub.status.retryAt !== null && hub.status.retryAt - Date.now() > 20000, 10000, "a long wait");
  server = await startServer([], { port });
  await sleep(300);
  assert.notEqual(hub.state, "connected", "still waiting: the breaker is open and probing is off");
  const asked = Date.now();
  hub.retryNow();
  await waitFor(() => hub.state === "connected", 2000, "connected right after retryNow()");
  t.diagnostic(`connected ${Date.now() - asked} ms after retryNow()`);
});

for (const transport of ["websocket", "sse"]) {
  test(`${transport}: recovery is "not-needed" at first, "recovered" after a drop, "unrecovered" after a restart`, { timeout: 30000 }, async (t) => {
    let server, proxy, hub;
    t.after(async () => {
      hub?.close();
      await proxy?.close();
      await server?.stop();
    });
    server = await startServer();
    proxy = await startProxy(server.port);
    hub = new LiveHub(proxy.url, { WebSocket, transports: [transport], backoff: { base: 50, cap: 100 } });
    const sub = hub.subscribe("status/recovery");
    const infos = [];
    sub.on("subscribed", (info) => infos.push(info));
    await waitFor(() => infos.length === 1, 10000, "the first subscribed");
    assert.equal(infos[0].recovery, "not-needed");
    assert.equal(infos[0].recovered, false, "the old field stays for existing users");

    await publishHttp(server.url, "status/recovery", 1);
    await nextEvent(sub, "message");
    proxy.dropAll();
    await waitFor(() => infos.length === 2, 10000, "the subscribed after the drop");
    assert.equal(infos[1].recovery, "recovered");
    assert.equal(infos[1].recovered, true);

    await server.restart();
    await waitFor(() => infos.length === 3, 15000, "the subscribed after the restart");
    assert.equal(infos[2].recovery, "unrecovered");
  });
}
