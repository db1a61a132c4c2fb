// The official ASP.NET Core SignalR JavaScript client (@microsoft/signalr, with
// @microsoft/signalr-protocol-msgpack) against the real livehub binary, unchanged: every
// transport with both hub protocols (SSE carries JSON only, as the protocol says), and for each
// row: subscribe and receive publications made over the HTTP API and the native WebSocket,
// publish, invoke with a result and with an error, history, presence, both streaming directions
// and a cancelled stream, the per-prefix client method, and a server restart with
// withAutomaticReconnect() coming back and resubscribing from its positions. Stateful reconnect
// (withStatefulReconnect()) is checked across a cut TCP connection with every message exactly
// once.
//
// Run by run.sh, which builds the binary and sets LIVEHUB_BIN.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import WebSocket from "ws";
import {
  LIVEHUB_BIN,
  publishHttp,
  startProxy,
  startServer,
  waitFor,
  withTimeout,
} from "../../clients/js/test/harness.mjs";

const ROWS = [
  { transport: "WebSockets", protocol: "json" },
  { transport: "WebSockets", protocol: "messagepack" },
  { transport: "ServerSentEvents", protocol: "json" },
  { transport: "LongPolling", protocol: "json" },
  { transport: "LongPolling", protocol: "messagepack" },
];

const CONFIG = `
[[signalr.targets]]
prefix = "mapped/"
target = "ReceiveMapped"
`;

let dir;
let server;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "livehub-signalr-"));
  const config = path.join(dir, "livehub.toml");
  await writeFile(config, CONFIG);
  server = await startServer(["--config", config]);
});

after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A hub connection for `row` to `url` (the server's by default), not started. */
function connect(row, { url = server.url, reconnect = false, stateful = false } = {}) {
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(`${url}/hubs/live`, { transport: signalR.HttpTransportType[row.transport] })
    .configureLogging(signalR.LogLevel.None);
  if (row.protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  if (reconnect) builder = builder.withAutomaticReconnect([0, 100, 250, 500, 1000, 1000, 1000, 1000, 1000, 1000]);
  if (stateful) builder = builder.withStatefulReconnect();
  return builder.build();
}

/** Collects the invocations of `method` on `connection`: `[channel, message]` pairs. */
function collect(connection, method = "Receive") {
  const got = [];
  connection.on(method, (channel, message) => {
    got.push({ channel, message });
  });
  return got;
}

/** Publishes over the native WebSocket protocol; resolves with the ack. */
async function publishNative(channel, data) {
  const socket = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
  try {
    const ack = new Promise((resolve, reject) => {
      socket.on("error", reject);
      socket.on("message", (raw) => {
        const message = JSON.parse(raw.toString());
        if (message.type === "ack" && message.id === 1) resolve(message);
        if (message.type === "error") reject(new Error(message.message));
      });
    });
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    socket.send(JSON.stringify({ id: 1, action: "publish", channel, data }));
    return await withTimeout(ack, 5000, "the native publish's ack");
  } finally {
    socket.close();
  }
}

let unique = 0;
/** A channel name no other test uses. */
function channel(prefix = "t") {
  unique += 1;
  return `${prefix}/${process.pid}/${unique}`;
}

for (const row of ROWS) {
  describe(`${row.transport} + ${row.protocol}`, () => {
    test("subscribes and receives publications from the HTTP API and the native WebSocket", async () => {
      const hub = connect(row);
      const got = collect(hub);
      await hub.start();
      try {
        const name = channel();
        const subscribed = await hub.invoke("Subscribe", [name]);
        assert.equal(subscribed[name].position.offset, 0);
        const published = await publishHttp(server.url, name, { n: 1 });
        await publishNative(name, { n: 2 });
        await waitFor(() => got.length === 2, 10000, "two publications");
        assert.deepEqual(
          got.map(({ channel, message }) => [channel, message.channel, message.data.n, message.offset]),
          [
            [name, name, 1, 1],
            [name, name, 2, 2],
          ],
        );
        assert.equal(got[0].message.epoch, published.epoch);
        assert.equal(typeof got[0].message.ts, "number");
      } finally {
        await hub.stop();
      }
    });

    test("publishes with a result, and an invocation that fails rejects with the code", async () => {
      const hub = connect(row);
      const got = collect(hub);
      await hub.start();
      try {
        const name = channel();
        await hub.invoke("subscribe", name);
        const result = await hub.invoke("Publish", name, { hello: "world" });
        assert.equal(result.offset, 1);
        assert.equal(result.channel, name);
        await waitFor(() => got.length === 1, 10000, "the publication");
        assert.deepEqual(got[0].message.data, { hello: "world" });
        await assert.rejects(hub.invoke("Publish", "$sys/presence", 1), /read_only_channel/);
        await assert.rejects(hub.invoke("Publish", name), /argument/);
        await assert.rejects(hub.invoke("NoSuchMethod"), /no such method/);
        // The connection is still usable after errors.
        assert.equal((await hub.invoke("PUBLISH", name, 2)).offset, 2);
      } finally {
        await hub.stop();
      }
    });

    test("reads history and presence", async () => {
      const hub = connect(row);
      await hub.start();
      try {
        const name = channel();
        for (let n = 1; n <= 3; n++) await publishHttp(server.url, name, n);
        const history = await hub.invoke("History", name, null, 2);
        assert.deepEqual(
          history.publications.map((p) => [p.offset, p.data]),
          [
            [2, 2],
            [3, 3],
          ],
        );
        const since = await hub.invoke("History", name, { offset: 1, epoch: history.epoch }, 10);
        assert.deepEqual(
          since.publications.map((p) => p.data),
          [2, 3],
        );
        await hub.invoke("Subscribe", name);
        const presence = await hub.invoke("Presence", name);
        assert.equal(presence.subscribers, 1);
      } finally {
        await hub.stop();
      }
    });

    test("streams a channel until cancelled, and uploads a client stream", async () => {
      const hub = connect(row);
      await hub.start();
      try {
        const name = channel();
        const items = [];
        const stream = hub.stream("Stream", name).subscribe({
          next: (item) => items.push(item),
          error: () => {},
          complete: () => {},
        });
        await waitFor(async () => (await hub.invoke("Presence", name)).subscribers === 1, 10000, "the stream");
        await publishHttp(server.url, name, "a");
        await publishHttp(server.url, name, "b");
        await waitFor(() => items.length === 2, 10000, "two stream items");
        assert.deepEqual(
          items.map((i) => [i.data, i.offset]),
          [
            ["a", 1],
            ["b", 2],
          ],
        );
        stream.dispose();
        await waitFor(async () => (await hub.invoke("Presence", name)).subscribers === 0, 10000, "the cancel");
        await publishHttp(server.url, name, "c");
        await sleep(200);
        assert.equal(items.length, 2, "nothing after the cancel");

        const target = channel();
        const subject = new signalR.Subject();
        const uploaded = hub.invoke("Upload", target, subject);
        for (const n of [1, 2, 3]) subject.next({ n });
        subject.complete();
        const result = await uploaded;
        assert.equal(result.published, 3);
        assert.equal(result.offset, 3);
        const history = await hub.invoke("History", target, null, 10);
        assert.deepEqual(
          history.publications.map((p) => p.data.n),
          [1, 2, 3],
        );
      } finally {
        await hub.stop();
      }
    });

    test("invokes the client method its channel's prefix maps to", async () => {
      const hub = connect(row);
      const mapped = collect(hub, "ReceiveMapped");
      const plain = collect(hub);
      await hub.start();
      try {
        const name = channel("mapped");
        await hub.invoke("Subscribe", [name]);
        await publishHttp(server.url, name, 7);
        await waitFor(() => mapped.length === 1, 10000, "ReceiveMapped");
        assert.equal(mapped[0].message.data, 7);
        assert.equal(plain.length, 0);
      } finally {
        await hub.stop();
      }
    });

    test("resubscribing with positions recovers exactly what was missed", async () => {
      const name = channel();
      const first = await publishHttp(server.url, name, 1);
      await publishHttp(server.url, name, 2);
      await publishHttp(server.url, name, 3);
      const hub = connect(row);
      const got = collect(hub);
      await hub.start();
      try {
        const result = await hub.invoke("Subscribe", [name], { [name]: { offset: first.offset, epoch: first.epoch } });
        assert.equal(result[name].recovered, true);
        await waitFor(() => got.length === 2, 10000, "the missed publications");
        assert.deepEqual(
          got.map((g) => g.message.data),
          [2, 3],
        );
      } finally {
        await hub.stop();
      }
    });
  });
}

describe("server restart", () => {
  for (const row of ROWS) {
    test(`${row.transport} + ${row.protocol}: withAutomaticReconnect() comes back and resubscribes from its positions`, async () => {
      const hub = connect(row, { reconnect: true });
      const got = collect(hub);
      const positions = {};
      hub.on("Receive", (name, message) => {
        positions[name] = { offset: message.offset, epoch: message.epoch };
      });
      const name = channel();
      let resubscribed;
      hub.onreconnected(() => {
        resubscribed = hub.invoke("Subscribe", [name], positions);
      });
      await hub.start();
      try {
        await hub.invoke("Subscribe", [name]);
        await publishHttp(server.url, name, "before");
        await waitFor(() => got.length === 1, 10000, "the first publication");
        // SIGTERM: the server tells every connection to come back (Close with allowReconnect).
        await server.stop("SIGTERM");
        await server.restart();
        await waitFor(() => resubscribed, 20000, "the reconnect");
        const result = await resubscribed;
        // The in-memory history went with the process: the client is told, not silently gapped.
        assert.equal(result[name].recovered, false);
        await publishHttp(server.url, name, "after");
        await waitFor(() => got.length === 2, 10000, "a publication after the restart");
        assert.equal(got[1].message.data, "after");
        assert.equal(hub.state, signalR.HubConnectionState.Connected);
      } finally {
        await hub.stop();
      }
    });
  }
});

describe("stateful reconnect", () => {
  for (const protocol of ["json", "messagepack"]) {
    test(`WebSockets + ${protocol}: a cut TCP connection loses and repeats nothing`, async () => {
      const proxy = await startProxy(server.port);
      const hub = connect({ transport: "WebSockets", protocol }, { url: proxy.url, stateful: true });
      const got = collect(hub);
      let closed = false;
      hub.onclose(() => {
        closed = true;
      });
      await hub.start();
      try {
        const name = channel();
        await hub.invoke("Subscribe", [name]);
        for (let n = 1; n <= 5; n++) await publishHttp(server.url, name, n);
        await waitFor(() => got.length === 5, 10000, "the first five");
        const connections = proxy.connections;
        proxy.dropAll();
        // Published while the client has no connection: the parked session keeps them.
        for (let n = 6; n <= 10; n++) await publishHttp(server.url, name, n);
        await waitFor(() => proxy.connections > connections, 10000, "the client reconnecting");
        await waitFor(() => got.length >= 10, 10000, "the five published during the cut");
        // An invocation on the resumed connection still gets its answer.
        assert.equal((await hub.invoke("Publish", name, 11)).offset, 11);
        await waitFor(() => got.length >= 11, 10000, "the eleventh");
        await sleep(200);
        assert.deepEqual(
          got.map((g) => g.message.data),
          [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        );
        assert.equal(closed, false);
      } finally {
        await hub.stop();
        await proxy.close();
      }
    });
  }
});

describe("authentication and permissions", () => {
  const SECRET = "signalr-auth-test-secret";
  let secured;

  /** Mints a token with `livehub token` (HS256 with SECRET). */
  async function mint({ sub = "alice", subscribe = [], publish = [] }) {
    const args = ["token", "--secret", SECRET, "--sub", sub, "--ttl", "600"];
    for (const p of subscribe) args.push("--subscribe", p);
    for (const p of publish) args.push("--publish", p);
    const { stdout } = await promisify(execFile)(LIVEHUB_BIN, args);
    return stdout.trim();
  }

  before(async () => {
    const file = path.join(dir, "auth.toml");
    await writeFile(file, `[auth.jwt]\nhmac_secret = "${SECRET}"\nleeway_secs = 0\n`);
    secured = await startServer(["--config", file]);
  });
  after(async () => {
    await secured?.stop();
  });

  for (const row of ROWS) {
    test(`${row.transport} + ${row.protocol}: the token from accessTokenFactory decides every method`, async () => {
      const token = await mint({ subscribe: ["open/#"], publish: ["open/#"] });
      let builder = new signalR.HubConnectionBuilder()
        .withUrl(`${secured.url}/hubs/live`, {
          transport: signalR.HttpTransportType[row.transport],
          accessTokenFactory: () => token,
        })
        .configureLogging(signalR.LogLevel.None);
      if (row.protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
      const hub = builder.build();
      const got = collect(hub);
      await hub.start();
      try {
        const name = channel("open");
        await hub.invoke("Subscribe", [name]);
        assert.equal((await hub.invoke("Publish", name, 1)).offset, 1);
        await waitFor(() => got.length === 1, 10000, "the publication");
        await assert.rejects(hub.invoke("Subscribe", ["closed/a"]), /^Error: forbidden: closed\/a/);
        await assert.rejects(hub.invoke("Publish", "closed/a", 1), /forbidden/);
        await assert.rejects(hub.invoke("History", "closed/a"), /forbidden/);
        await assert.rejects(hub.invoke("Presence", "closed/a"), /forbidden/);
      } finally {
        await hub.stop();
      }
    });
  }

  test("a client without a token is refused at negotiate, and skipping negotiate does not help", async () => {
    const hub = new signalR.HubConnectionBuilder()
      .withUrl(`${secured.url}/hubs/live`)
      .configureLogging(signalR.LogLevel.None)
      .build();
    await assert.rejects(hub.start(), /401/);
    const direct = new signalR.HubConnectionBuilder()
      .withUrl(`${secured.url}/hubs/live`, { transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true })
      .configureLogging(signalR.LogLevel.None)
      .build();
    await assert.rejects(direct.start());
  });
});
