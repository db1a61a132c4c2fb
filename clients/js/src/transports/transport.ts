import { LiveHubError, httpError } from "../errors.js";
import type { Ack, Message, Position, SubscribedInfo, TransportName } from "../types.js";

/** A subscription the hub wants the transport to hold. */
export interface Wanted {
  filter: string;
  latest: boolean;
}

/** Why a transport closed. */
export interface CloseReason {
  code: number;
  reason: string;
  /** False for the "do not reconnect" codes (4500–4999, 1002, 1007, 1008, 1009). */
  reconnect: boolean;
}

/** What a transport reports to the hub. */
export interface TransportEvents {
  message(message: Message): void;
  subscribed(info: SubscribedInfo): void;
  subscribeError(filter: string, error: LiveHubError): void;
  closed(reason: CloseReason): void;
}

/**
 * One way of talking to the server. `open` resolves once the transport can deliver and has
 * asked for `wanted`, resuming from `positions`; after that, `closed` is reported exactly once
 * unless the hub itself called `close`.
 */
export interface Transport {
  readonly name: TransportName;
  open(wanted: Wanted[], positions: Map<string, Position>): Promise<void>;
  /** Changes the subscriptions of an open transport. */
  update(wanted: Wanted[], positions: Map<string, Position>): void;
  publish(channel: string, data: unknown, key: string): Promise<Ack>;
  close(): void;
}

/** Everything a transport needs from the hub's options. */
export interface TransportContext {
  baseUrl: string;
  fetch: typeof fetch;
  events: TransportEvents;
  longPollTimeout: number;
  pollInterval: number;
}

/**
 * The transports that change subscriptions by reopening (from the current positions, so nothing
 * is lost) and publish over `POST /api/publish`: SSE, long polling and polling. `generation`
 * tells a superseded stream or loop to end quietly.
 */
export abstract class HttpTransport implements Transport {
  abstract readonly name: TransportName;
  protected closedByUs = false;
  protected generation = 0;

  constructor(protected readonly ctx: TransportContext) {}

  abstract open(wanted: Wanted[], positions: Map<string, Position>): Promise<void>;

  /** Stops the current stream, request or timer. */
  protected abstract stop(): void;

  update(wanted: Wanted[], positions: Map<string, Position>): void {
    // A failed reopen of the live generation is a lost connection; a superseded one is not.
    this.open(wanted, positions).catch((err: unknown) => this.lost(this.generation, 1006, String(err)));
  }

  publish(channel: string, data: unknown, key: string): Promise<Ack> {
    return httpPublish(this.ctx, channel, data, key);
  }

  close(): void {
    this.closedByUs = true;
    this.stop();
  }

  /** Whether `generation` is the live one and the hub has not closed the transport. */
  protected current(generation: number): boolean {
    return !this.closedByUs && generation === this.generation;
  }

  /** Reports the close of the live `generation` to the hub, once. */
  protected lost(generation: number, code: number, reason: string): void {
    if (this.current(generation)) {
      this.ctx.events.closed({ code, reason, reconnect: mayReconnect(code) });
    }
  }
}

/** Whether a close code means the client may come back. */
export function mayReconnect(code: number): boolean {
  return !((code >= 4500 && code < 5000) || code === 1002 || code === 1007 || code === 1008 || code === 1009);
}

/** Publishes over `POST /api/publish`; a network failure is `disconnected` so the hub may retry. */
export async function httpPublish(ctx: TransportContext, channel: string, data: unknown, key: string): Promise<Ack> {
  let response: Response;
  try {
    response = await ctx.fetch(`${ctx.baseUrl}/api/publish`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ channel, data, key }),
    });
  } catch (err) {
    throw new LiveHubError("disconnected", `publish request failed: ${String(err)}`);
  }
  if (!response.ok) {
    throw await httpError(response);
  }
  return (await response.json()) as Ack;
}

/** A server `message` as the application sees it: base64 binary data becomes bytes. */
export function toMessage(raw: Record<string, unknown>): Message {
  let data = raw["data"];
  if (raw["encoding"] === "base64" && typeof data === "string") {
    const binary = atob(data);
    data = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }
  return {
    channel: String(raw["channel"]),
    data,
    offset: Number(raw["offset"]),
    epoch: String(raw["epoch"]),
    ts: Number(raw["ts"]),
  };
}

/** The positions worth sending to resume `wanted`: exact channels, and the concrete channels a pattern matched. */
export function resumable(
  wanted: Wanted[],
  positions: Map<string, Position>,
  matches: (filter: string, channel: string) => boolean,
): Map<string, Position> {
  const out = new Map<string, Position>();
  for (const [channel, position] of positions) {
    if (wanted.some((w) => matches(w.filter, channel))) {
      out.set(channel, position);
    }
  }
  return out;
}

/** Reports the per-channel `{position, recovered}` entries of an SSE `connected` or long-poll answer. */
export function reportChannels(events: TransportEvents, channels: unknown): void {
  if (!channels || typeof channels !== "object") {
    return;
  }
  for (const [channel, entry] of Object.entries(channels as Record<string, Record<string, unknown>>)) {
    const position = entry["position"] as Position | undefined;
    const info: SubscribedInfo = { channel, recovered: entry["recovered"] === true };
    if (position) {
      info.position = position;
    }
    events.subscribed(info);
  }
}
