// Authentication against a server with `[auth.jwt]` (HMAC secret, no clock leeway), on every
// transport where it applies:
// - a static token connects and receives publications; hub.publish sends it too;
// - no token, or a token with a wrong signature: one attempt, then `error` `unauthorized` and
//   state `disconnected` (counted: WebSocket constructions and fetch calls), no token in the
//   message; `setToken` + `connect()` then connects;
// - a token function with 3 s tokens: refreshed before they expire, while a numbered sequence is
//   published across several refreshes, delivered exactly once and in order, with no state
//   change: over WebSocket on the same socket (the `refresh` command), over SSE by reopening the
//   stream, over (long) polling by sending the new token on the next request;
// - a refresh whose token function fails: `error` `token_unavailable`, the server ends the
//   connection when the token runs out (`token_expired`), the hub gets a fresh token, reconnects
//   and recovers: the sequence still arrives exactly once, in order;
// - an expired token at connect: the function is asked for another and the hub connects;
// - forbidden subscriptions: over WebSocket only that subscription gets `error` `forbidden`
//   (also a later listener of it), the others keep working, and `setToken` with wider grants
//   brings it back on the same socket; polling does the same per channel; SSE and long polling
//   refuse a whole request: refused at connect, every subscription and the hub get `forbidden`
//   and the hub stays `disconnected` until the application fixes it and calls `connect()`;
//   refused when added to a live stream, only the added subscription gets the error;
// - a per-address connection limit (WebSocket close 4029): `error` `too_many_connections`, the
//   hub keeps trying with back-off and connects once a slot frees up.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import WebSocket from "ws";
import { LiveHub, tokenExpiry } from "../dist/index.js";
import { LIVEHUB_BIN, nextEvent, startServer, waitFor, withTimeout } from "./harness.mjs";

const TRANSPORTS = ["websocket", "sse", "long-polling", "polling"];
const SECRET = "client-auth-test-secret";
const run = promisify(execFile);

/** Mints a token with `livehub token` (HS256 with SECRET). */
async function mint({ sub = "alice", subscribe = ["a/#"], publish = ["a/#"], ttl = 60, claims = [], secret = SECRET } = {}) {
  const args = ["token", "--secret", secret, "--sub", sub, "--ttl", String(ttl)];
  for (const p of subscribe) args.push("--subscribe", p);
  for (const p of publish) args.push("--publish", p);
  for (const c of claims) args.push("--claim", c);
  const { stdout } = await run(LIVEHUB_BIN, args);
  return stdout.trim();
}

let dir;
/** Starts a server with JWT auth (and `extra` config lines). */
async function authServer(extra = "") {
  const file = path.join(dir, `livehub-${Math.random().toString(36).slice(2)}.toml`);
  await writeFile(file, `[auth.jwt]\nhmac_secret = "${SECRET}"\nleeway_secs = 0\n${extra}`);
  return startServer(["--config", file]);
}

let server;
let publisher; // a token that may publish anywhere under a/ and b/
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "livehub-auth-"));
  server = await authServer();
  publisher = await mint({ sub: "publisher", subscribe: [], publish: ["a/#", "b/#"], ttl: 3600 });
});
after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** POST /api/publish with the publisher's token. */
async function publish(channel, data) {
  const response = await fetch(`${server.url}/api/publish`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${publisher}` },
    body: JSON.stringify({ channel, data }),
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`publish to ${channel}: HTTP ${response.status} ${text}`);
  return JSON.parse(text);
}

/** A WebSocket constructor and a fetch that count what the hub opens and requests. */
function counting() {
  const counts = { ws: 0, fetch: [] };
  class CountingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      counts.ws++;
    }
  }
  const countingFetch = (url, init) => {
    counts.fetch.push(new URL(String(url)).pathname);
    return fetch(url, init);
  };
  counts.attempts = () => counts.ws + counts.fetch.length;
  return { counts, WebSocket: CountingWebSocket, fetch: countingFetch };
}

/** A hub pinned to `transport` on `server`, recording its state changes and errors; closed when the test ends. */
function makeHub(t, transport, options = {}) {
  const { counts, WebSocket: WS, fetch: f } = counting();
  const hub = new LiveHub(server.url, { transports: [transport], WebSocket: WS, fetch: f, pollInterval: 100, ...options });
  const states = [];
  const errors = [];
  hub.on("state", (s) => states.push(s.state));
  hub.on("error", (e) => errors.push(e));
  t.after(() => hub.close());
  return { hub, counts, states, errors };
}

/** Collects the `n` of each message of `sub`. */
function collect(sub) {
  const got = [];
  sub.on("message", (m) => got.push(m.data.n));
  return got;
}

for (const transport of TRANSPORTS) {
  describe(transport, () => {
    test("a static token connects, receives publications and publishes", { timeout: 30000 }, async (t) => {
      const channel = `a/${transport}/static`;
      await publish(channel, { n: 0 });
      const { hub, errors } = makeHub(t, transport, { token: await mint() });
      const got = collect(hub.subscribe(channel, { latest: true }));
      await waitFor(() => got.length >= 1, 10000, "the latest value");
      await waitFor(() => hub.state === "connected", 10000, "state connected");
      await publish(channel, { n: 1 });
      const ack = await withTimeout(hub.publish(channel, { n: 2 }), 10000, "the publish ack");
      assert.equal(ack.offset, 3);
      await waitFor(() => got.length >= 3, 10000, "3 messages");
      assert.deepEqual(got, [0, 1, 2]);
      assert.deepEqual(errors, []);
    });

    test("no token: one attempt, error unauthorized, disconnected; setToken + connect() connects", { timeout: 30000 }, async (t) => {
      const channel = `a/${transport}/no-token`;
      await publish(channel, { n: 0 });
      const { hub, counts, errors } = makeHub(t, transport, { autoConnect: false });
      const got = collect(hub.subscribe(channel, { latest: true }));
      hub.connect();
      await waitFor(() => errors.length > 0 && hub.state === "disconnected", 10000, () => `error and disconnected (state ${hub.state})`);
      assert.deepEqual(errors.map((e) => e.code), ["unauthorized"]);
      assert.equal(counts.attempts(), 1, `attempts: ${counts.ws} WebSocket(s), fetch ${JSON.stringify(counts.fetch)}`);
      await sleep(1000); // a window for a retry to show up; nothing is timed
      assert.equal(counts.attempts(), 1, "no further attempt");
      assert.equal(hub.state, "disconnected");

      hub.setToken(await mint());
      hub.connect();
      await waitFor(() => got.length >= 1, 10000, "the latest value after setToken");
      assert.equal(hub.state, "connected");
    });

    test("a token with a wrong signature: error unauthorized without the token in it", { timeout: 30000 }, async (t) => {
      const token = await mint({ secret: "not-the-server-secret" });
      const { hub, counts, errors } = makeHub(t, transport);
      hub.subscribe(`a/${transport}/wrong-signature`);
      await waitFor(() => errors.length > 0 && hub.state === "disconnected", 10000, "error and disconnected");
      assert.deepEqual(errors.map((e) => e.code), ["unauthorized"]);
      assert.equal(counts.attempts(), 1);
      for (const e of errors) {
        assert.ok(!e.message.includes(token) && !String(e.stack).includes(token), `the token shows in: ${e.message}`);
      }
    });

    test("a token function with 3 s tokens: refreshed without a reconnect, a sequence arrives exactly once", { timeout: 60000 }, async (t) => {
      const channel = `a/${transport}/refresh`;
      await publish(channel, { n: 0 });
      const issued = [];
      const token = async () => {
        const jwt = await mint({ ttl: 3 });
        issued.push(jwt);
        return jwt;
      };
      const { hub, counts, states, errors } = makeHub(t, transport, { token });
      const got = collect(hub.subscribe(channel, { latest: true }));
      await waitFor(() => got.length >= 1 && hub.state === "connected", 10000, "connected with the latest value");
      const statesAtConnect = states.length;
      const firstExpiry = tokenExpiry(issued[0]);
      assert.ok(firstExpiry, "the token has an exp");

      // Publish until two tokens past the first have expired, and two refreshes happened.
      let n = 0;
      while ((Date.now() < firstExpiry + 3500 || issued.length < 3) && n < 300) {
        await publish(channel, { n: ++n });
        await sleep(50);
      }
      await waitFor(() => got.length >= n + 1, 15000, () => `${n + 1} messages (got ${got.length})`);
      await sleep(300); // a window for a duplicate to show up
      assert.deepEqual(got, Array.from({ length: n + 1 }, (_, i) => i));
      assert.ok(issued.length >= 3, `the function was called ${issued.length} times`);
      assert.deepEqual(states.slice(statesAtConnect), [], "no state change after connecting");
      assert.deepEqual(errors, []);
      if (transport === "websocket") {
        assert.equal(counts.ws, 1, "one WebSocket for the whole test: refreshed in place");
      }
      if (transport === "sse") {
        const streams = counts.fetch.filter((p) => p === "/sse").length;
        assert.ok(streams >= 3, `the stream was reopened with each new token (${streams} streams)`);
      }
    });

    test("the refresh fails, the token runs out: token_expired, a fresh token, a reconnect that loses nothing", { timeout: 60000 }, async (t) => {
      const channel = `a/${transport}/ran-out`;
      await publish(channel, { n: 0 });
      let calls = 0;
      const token = async () => {
        calls++;
        if (calls === 2) throw new Error("token backend down");
        return mint({ ttl: calls === 1 ? 3 : 60 });
      };
      const { hub, states, errors } = makeHub(t, transport, { token });
      const got = collect(hub.subscribe(channel, { latest: true }));
      await waitFor(() => got.length >= 1 && hub.state === "connected", 10000, "connected with the latest value");
      const statesAtConnect = states.length;

      // Publish across the failed refresh, the expiry and the reconnect, and a little after.
      let n = 0;
      let after = 0;
      while (after < 5 && n < 300) {
        await publish(channel, { n: ++n });
        await sleep(50);
        if (calls >= 3 && hub.state === "connected") after++;
      }
      await waitFor(() => got.length >= n + 1, 15000, () => `${n + 1} messages (got ${got.length})`);
      await sleep(300); // a window for a duplicate to show up
      assert.deepEqual(got, Array.from({ length: n + 1 }, (_, i) => i));
      assert.equal(calls, 3);
      assert.deepEqual(errors.map((e) => e.code), ["token_unavailable"]);
      assert.ok(!errors[0].message.includes("eyJ"), "no token in the message");
      assert.deepEqual(states.slice(statesAtConnect).filter((s, i, all) => s !== all[i - 1]), ["reconnecting", "connected"]);
    });

    test("an expired token at connect: the function is asked for another and the hub connects", { timeout: 30000 }, async (t) => {
      const channel = `a/${transport}/expired`;
      await publish(channel, { n: 0 });
      const expired = await mint({ claims: ["exp=1000"] });
      let calls = 0;
      const token = async () => (++calls === 1 ? expired : mint());
      const { hub, errors } = makeHub(t, transport, { token });
      const got = collect(hub.subscribe(channel, { latest: true }));
      await waitFor(() => got.length >= 1 && hub.state === "connected", 10000, "connected with the latest value");
      assert.equal(calls, 2);
      assert.deepEqual(errors, []);
    });
  });
}

describe("forbidden subscriptions", () => {
  test("websocket: only that subscription gets forbidden; setToken with wider grants brings it back on the same socket", { timeout: 30000 }, async (t) => {
    await publish("a/ws/ok", { n: 0 });
    await publish("b/ws/secret", { n: 0 });
    const { hub, counts, states, errors } = makeHub(t, "websocket", { token: await mint() });
    const ok = collect(hub.subscribe("a/ws/ok", { latest: true }));
    const secret = hub.subscribe("b/ws/secret", { latest: true });
    const secretGot = collect(secret);
    const refusal = await nextEvent(secret, "error", { what: "the forbidden error" });
    assert.equal(refusal.code, "forbidden");
    await waitFor(() => ok.length >= 1, 10000, "the latest value of the allowed channel");
    await publish("a/ws/ok", { n: 1 });
    await waitFor(() => ok.length >= 2, 10000, "a live publication");
    assert.deepEqual(ok, [0, 1]);
    assert.equal(hub.state, "connected");
    assert.deepEqual(errors, []);

    // A second listener of the refused channel hears of the refusal too.
    const late = await nextEvent(hub.subscribe("b/ws/secret"), "error", { what: "the refusal for a later listener" });
    assert.equal(late.code, "forbidden");

    const statesBefore = states.length;
    hub.setToken(await mint({ subscribe: ["a/#", "b/#"] }));
    await waitFor(() => secretGot.length >= 1, 10000, "the latest value of the channel the new token allows");
    await publish("b/ws/secret", { n: 1 });
    await publish("a/ws/ok", { n: 2 });
    await waitFor(() => secretGot.length >= 2 && ok.length >= 3, 10000, "live publications on both");
    assert.deepEqual(secretGot, [0, 1]);
    assert.deepEqual(ok, [0, 1, 2]);
    assert.equal(counts.ws, 1, "the same socket");
    assert.deepEqual(states.slice(statesBefore), []);
  });

  test("polling: only that channel gets forbidden, the others go on", { timeout: 30000 }, async (t) => {
    await publish("a/poll/ok", { n: 0 });
    const { hub, errors } = makeHub(t, "polling", { token: await mint() });
    const ok = collect(hub.subscribe("a/poll/ok", { latest: true }));
    const secret = hub.subscribe("b/poll/secret");
    const refusal = await nextEvent(secret, "error", { what: "the forbidden error" });
    assert.equal(refusal.code, "forbidden");
    await waitFor(() => ok.length >= 1, 10000, "the latest value");
    await publish("a/poll/ok", { n: 1 });
    await waitFor(() => ok.length >= 2, 10000, "a later publication");
    assert.equal(hub.state, "connected");
    assert.deepEqual(errors, []);
  });

  for (const transport of ["sse", "long-polling"]) {
    test(`${transport}: refused at connect: every subscription and the hub get forbidden, disconnected until fixed`, { timeout: 30000 }, async (t) => {
      const channel = `a/${transport}/ok-at-connect`;
      await publish(channel, { n: 0 });
      const { hub, counts, errors } = makeHub(t, transport, { token: await mint(), autoConnect: false });
      const okSub = hub.subscribe(channel, { latest: true });
      const ok = collect(okSub);
      const okErrors = [];
      okSub.on("error", (e) => okErrors.push(e.code));
      const secret = hub.subscribe(`b/${transport}/secret`);
      const secretErrors = [];
      secret.on("error", (e) => secretErrors.push(e.code));
      hub.connect();
      await waitFor(() => errors.length > 0 && hub.state === "disconnected", 10000, "error and disconnected");
      assert.deepEqual(errors.map((e) => e.code), ["forbidden"]);
      assert.deepEqual(okErrors, ["forbidden"]);
      assert.deepEqual(secretErrors, ["forbidden"]);
      assert.equal(counts.attempts(), 1);
      await sleep(500); // a window for a retry to show up; nothing is timed
      assert.equal(counts.attempts(), 1, "no further attempt");

      secret.unsubscribe();
      hub.connect();
      await waitFor(() => ok.length >= 1, 10000, "the latest value after the fix");
      await publish(channel, { n: 1 });
      await waitFor(() => ok.length >= 2, 10000, "a live publication");
      assert.deepEqual(ok, [0, 1]);
    });

    test(`${transport}: a forbidden subscription added to a live stream gets the error, the rest goes on`, { timeout: 30000 }, async (t) => {
      const channel = `a/${transport}/ok-live`;
      await publish(channel, { n: 0 });
      const { hub, states, errors } = makeHub(t, transport, { token: await mint() });
      const ok = collect(hub.subscribe(channel, { latest: true }));
      await waitFor(() => ok.length >= 1 && hub.state === "connected", 10000, "connected with the latest value");
      const statesBefore = states.length;
      const refusal = await nextEvent(hub.subscribe(`b/${transport}/secret-live`), "error", { what: "the forbidden error" });
      assert.equal(refusal.code, "forbidden");
      await publish(channel, { n: 1 });
      await waitFor(() => ok.length >= 2, 10000, "a live publication after the refusal");
      assert.deepEqual(ok, [0, 1]);
      assert.deepEqual(states.slice(statesBefore), []);
      assert.deepEqual(errors, []);
    });
  }
});

test("websocket: too many connections from the address (4029): error, back-off, connects once a slot frees", { timeout: 30000 }, async (t) => {
  const limited = await authServer("[rate_limits]\nconnections_per_ip = 1\n");
  t.after(() => limited.stop());
  const token = await mint();
  const holder = new WebSocket(`${limited.url.replace("http", "ws")}/ws?token=${token}`);
  t.after(() => holder.terminate());
  await withTimeout(new Promise((resolve, reject) => {
    holder.once("message", resolve);
    holder.once("close", (code) => reject(new Error(`holder closed: ${code}`)));
  }), 10000, "the holder connection");

  const hub = new LiveHub(limited.url, { transports: ["websocket"], WebSocket, token, backoff: { base: 100, cap: 400 } });
  t.after(() => hub.close());
  const errors = [];
  hub.on("error", (e) => errors.push(e.code));
  await waitFor(() => errors.length >= 2, 10000, "two refused attempts");
  assert.ok(errors.every((c) => c === "too_many_connections"), `errors: ${errors}`);
  assert.equal(hub.state, "reconnecting");

  holder.close();
  await waitFor(() => hub.state === "connected", 10000, () => `state connected (state ${hub.state})`);
});
