/**
 * MQTT links: MQTT.js over WebSocket at `/mqtt` (subprotocol `mqtt`), MQTT 5. Channels are topics
 * one to one and JSON payloads are the data (docs/mqtt.md). MQTT carries no stream positions, so
 * a reconnect cannot recover: every channel reports `unrecovered` and the pages refill from
 * history, as after any gap. Loaded only when MQTT is picked: MQTT.js is most of its size.
 */

import mqtt, { type MqttClient } from "mqtt";
import type { Message } from "../../../clients/js/src/index.js";
import { linkError, type Link, type LinkOpener, type LinkSubscribed } from "./link.js";

/** The broker's WebSocket path (`[mqtt] websocket`). */
export const MQTT_PATH = "/mqtt";

/** Seconds between MQTT keep-alive pings; the server drops a client silent for 1.5 times this. */
const KEEP_ALIVE_SECS = 30;

export interface MqttOptions {
  /** The server's origin. */
  baseUrl: string;
  /** The CONNECT password (a JWT or API key) on a server with access control. */
  token?: string;
}

/** CONNACK reason codes (MQTT 5) that the same credential would get again. */
const REFUSED = new Set([0x86, 0x87]);
/** CONNACK reason codes (MQTT 5) for a limit: retry after a back-off. */
const LIMITED = new Set([0x97, 0x9f]);

let links = 0;

export function mqttLink(options: MqttOptions): LinkOpener {
  return (events) =>
    new Promise<Link>((resolve, reject) => {
      const url = `${options.baseUrl.replace(/^http/, "ws")}${MQTT_PATH}`;
      const client = mqtt.connect(url, {
        protocolVersion: 5,
        clean: true,
        clientId: `livehub-dashboard-${Math.random().toString(36).slice(2, 10)}`,
        keepalive: KEEP_ALIVE_SECS,
        // Reconnects are the hub's: one loop, one back-off, one status for the indicator.
        reconnectPeriod: 0,
        connectTimeout: 5000,
        // The default runs timers in a worker made from a blob URL, which the page's CSP forbids.
        timerVariant: "native",
        ...(options.token ? { username: "token", password: options.token } : {}),
      });
      // MQTT has no offsets: an epoch of this link's own, and a count per channel, keep the
      // order checks of the pages meaningful within the link.
      const epoch = `mqtt-${++links}-${Math.random().toString(36).slice(2, 8)}`;
      const counts = new Map<string, number>();
      let connected = false;
      let refused = false;
      let open = true;
      client.on("message", (topic, payload) => {
        const offset = (counts.get(topic) ?? 0) + 1;
        counts.set(topic, offset);
        events.message({ channel: topic, data: decode(payload), offset, epoch, ts: Date.now() });
      });
      client.on("error", (err: Error & { code?: unknown }) => {
        if (!connected) {
          // A refused CONNACK has a reason code; a failed socket is told apart on close.
          if (typeof err.code === "number") {
            refused = true;
            reject(connectError(err));
          }
          client.end(true);
        }
      });
      client.on("close", () => {
        if (!connected && !refused) {
          void disabled(options.baseUrl).then((error) => reject(error ?? linkError("transport_failed", "the MQTT connection closed before CONNACK")));
        } else if (open) {
          open = false;
          events.closed(linkError("disconnected", "the MQTT connection was lost"));
        }
      });
      client.once("connect", () => {
        connected = true;
        resolve(
          new MqttLink(client, options, () => {
            open = false;
          }),
        );
      });
    });
}

class MqttLink implements Link {
  constructor(
    private readonly client: MqttClient,
    private readonly options: MqttOptions,
    private readonly closing: () => void,
  ) {}

  subscribe(channel: string): Promise<LinkSubscribed> {
    return new Promise((resolve, reject) => {
      this.client.subscribe(channel, { qos: 0 }, (err) => {
        if (err) {
          const code = (err as { code?: unknown }).code;
          reject(linkError(code === 0x87 || code === 0x80 ? "forbidden" : "subscribe_failed", `${channel}: ${err.message}`));
        } else {
          resolve({ recovered: false });
        }
      });
    });
  }

  unsubscribe(channel: string): Promise<void> {
    return new Promise((resolve) => this.client.unsubscribe(channel, () => resolve()));
  }

  /** The newest publication over the REST API (`GET /api/channels/{channel}`): MQTT has no way to ask. */
  async latest(channel: string): Promise<Message | null> {
    const path = channel.split("/").map(encodeURIComponent).join("/");
    const response = await fetch(`${this.options.baseUrl}/api/channels/${path}`, {
      headers: { accept: "application/json", ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}) },
      cache: "no-store",
    });
    if (!response.ok) {
      return null;
    }
    const body = (await response.json()) as { latest?: (Message & { time?: number }) | null };
    return body.latest ?? null;
  }

  close(): void {
    this.closing();
    this.client.end(true);
  }
}

/**
 * `transport_disabled` when a plain `GET /mqtt` says that the server has MQTT over WebSocket off:
 * a browser cannot read why a handshake was refused.
 */
async function disabled(baseUrl: string): Promise<Error | null> {
  try {
    const response = await fetch(`${baseUrl}${MQTT_PATH}`, { cache: "no-store", signal: AbortSignal.timeout(2000) });
    if (response.status !== 404) {
      return null;
    }
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    return body.error?.code === "transport_disabled" ? linkError("transport_disabled", body.error.message ?? "MQTT is disabled on this server") : null;
  } catch {
    return null;
  }
}

/** A JSON payload is its value; anything else stays bytes. */
function decode(payload: Uint8Array): unknown {
  const bytes = new Uint8Array(payload);
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown;
  } catch {
    return bytes;
  }
}

function connectError(err: Error & { code?: unknown }): Error {
  const code = typeof err.code === "number" ? err.code : null;
  if (code !== null && REFUSED.has(code)) {
    return linkError("unauthorized", `the MQTT broker refused the credential: ${err.message}`);
  }
  if (code !== null && LIMITED.has(code)) {
    return linkError("rate_limited", err.message);
  }
  return linkError("transport_failed", err.message);
}
