// MQTT.js over WebSocket, both directions, both protocol versions:
//   node mqttjs.mjs NAME WS_URL [HTTP_URL]
// With HTTP_URL (livehub), also an HTTP publish to an MQTT.js subscriber.
import assert from "node:assert/strict";
import mqtt from "mqtt";

const [name, url, http] = process.argv.slice(2);
const WAIT = 10_000;
let failed = 0;

function connect(protocolVersion) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion, reconnectPeriod: 0, connectTimeout: WAIT });
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

function nextMessage(client) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no message in time")), WAIT);
    client.once("message", (topic, payload, packet) => {
      clearTimeout(timer);
      resolve({ topic, payload: payload.toString(), qos: packet.qos });
    });
  });
}

async function check(what, body) {
  try {
    await body();
    console.log(`ok   ${name.padEnd(8)} MQTT.js ${what}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name.padEnd(8)} MQTT.js ${what}: ${e.message}`);
  }
}

for (const version of [4, 5]) {
  await check(`publish and subscribe, QoS 1, protocol ${version}`, async () => {
    const topic = `js/${version}/${Math.random().toString(36).slice(2)}`;
    const sub = await connect(version);
    const pub = await connect(version);
    await sub.subscribeAsync(topic, { qos: 1 });
    const got = nextMessage(sub);
    await pub.publishAsync(topic, JSON.stringify({ v: version }), { qos: 1 });
    const m = await got;
    assert.deepEqual([m.topic, JSON.parse(m.payload), m.qos], [topic, { v: version }, 1]);
    await sub.endAsync();
    await pub.endAsync();
  });
}

if (http) {
  await check("HTTP publish -> MQTT.js subscriber", async () => {
    const sub = await connect(5);
    await sub.subscribeAsync("js/fromweb", { qos: 1 });
    const got = nextMessage(sub);
    const response = await fetch(`${http}/api/publish`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ channel: "js/fromweb", data: { via: "http" } }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(JSON.parse((await got).payload), { via: "http" });
    await sub.endAsync();
  });
  await check("MQTT.js publish -> HTTP history", async () => {
    const pub = await connect(4);
    await pub.publishAsync("js/toweb", JSON.stringify({ via: "mqtt.js" }), { qos: 1 });
    await pub.endAsync();
    const history = await (await fetch(`${http}/api/channels/js/toweb/history?limit=1`)).json();
    assert.deepEqual(history.publications[0].data, { via: "mqtt.js" });
  });
}

process.exit(failed ? 1 : 0);
