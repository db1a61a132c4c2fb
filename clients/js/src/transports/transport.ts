import { LiveHubError, closeFor, httpError } from "../errors.js";
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

/** A (re)subscribe as a transport reports it; the hub works out the `recovery` it means. */
export type SubscribedReport = Omit<SubscribedInfo, "recovery">;

/** What a transport reports to the hub. */
export interface TransportEvents {
  message(message: Message): void;
  subscribed(info: SubscribedReport): void;
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
  /**
   * The token changed: make the live connection use it, and apply `wanted` (subscriptions refused
   * under the old token may be asked for again). Rejects when the connection cannot go on with
   * it; the hub then reconnects.
   */
  reauthenticate(wanted: Wanted[], positions: Map<string, Position>): Promise<void>;
  close(): void;
}

/** Everything a transport needs from the hub's options. */
export interface TransportContext {
  baseUrl: string;
  fetch: typeof fetch;
  events: TransportEvents;
  longPollTimeout: number;
  pollInterval: number;
  /** The token to send now, if any. */
  token(): string | undefined;
  /**
   * The hub's id, sent as the `client` parameter of long polls and polling reads: a poller has no
   * connection between requests, and without it two tabs behind one address and browser would
   * count as one client in presence.
   */
  clientId: string;
}

/** Request headers carrying the current token, if any, as `Authorization: Bearer`. */
export function authHeaders(ctx: TransportContext, headers: Record<string, string> = {}): Record<string, string> {
  const token = ctx.token();
  return token ? { ...headers, authorization: `Bearer ${token}` } : headers;
}

/**
 * How long an HTTP transport waits for more subscription changes before it reopens with all of
 * them: a page that subscribes to 50 channels one by one opens one stream, not 50. Longer would
 * delay a lone new subscription for nothing; shorter misses changes made across a few ticks.
 */
export const COALESCE_MS = 50;

/**
 * The transports that change subscriptions by reopening (from the current positions, so nothing
 * is lost) and publish over `POST /api/publish`: SSE, long polling and polling. `generation`
 * tells a superseded stream or loop to end quietly.
 */
export abstract class HttpTransport implements Transport {
  abstract readonly name: TransportName;
  protected closedByUs = false;
  protected generation = 0;
  /** The filters of the last request the server accepted. */
  private accepted = new Set<string>();
  /** A reopen waiting `COALESCE_MS` for more subscription changes. */
  private coalescing: ReturnType<typeof setTimeout> | null = null;

  constructor(protected readonly ctx: TransportContext) {}

  /** Opens (or reopens) with `wanted`; bumps `generation` synchronously, before its first await. */
  protected abstract start(wanted: Wanted[], positions: Map<string, Position>): Promise<void>;

  /** Stops the current stream, request or timer. */
  protected abstract stop(): void;

  async open(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    this.cancelCoalescing();
    const opening = this.start(wanted, positions);
    const generation = this.generation;
    await opening;
    if (generation === this.generation) {
      this.accepted = new Set(wanted.map((w) => w.filter));
    }
  }

  /** Reopens with `wanted` once no further change came for `COALESCE_MS`; the positions are read then. */
  update(wanted: Wanted[], positions: Map<string, Position>): void {
    this.cancelCoalescing();
    this.coalescing = setTimeout(() => {
      this.coalescing = null;
      if (!this.closedByUs) {
        void this.change(wanted, positions);
      }
    }, COALESCE_MS);
  }

  private cancelCoalescing(): void {
    if (this.coalescing) {
      clearTimeout(this.coalescing);
      this.coalescing = null;
    }
  }

  reauthenticate(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    // Every request reads the current token; a transport that holds none open needs nothing,
    // unless the filters changed.
    const same = wanted.length === this.accepted.size && wanted.every((w) => this.accepted.has(w.filter));
    return same ? Promise.resolve() : this.change(wanted, positions);
  }

  publish(channel: string, data: unknown, key: string): Promise<Ack> {
    return httpPublish(this.ctx, channel, data, key);
  }

  close(): void {
    this.closedByUs = true;
    this.cancelCoalescing();
    this.stop();
  }

  /**
   * Reopens with `wanted`. These transports name all their channels in one request, so the server
   * refuses it whole when one is `forbidden`: the filters added since the last accepted request
   * are then reported refused, and the transport goes on without them. Any other failure of the
   * live generation is a lost connection; a superseded one is not.
   */
  protected async change(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    const added = wanted.filter((w) => !this.accepted.has(w.filter));
    const opening = this.open(wanted, positions);
    const generation = this.generation;
    try {
      await opening;
    } catch (err) {
      if (!this.current(generation)) {
        return;
      }
      const error = err instanceof LiveHubError ? err : new LiveHubError("disconnected", String(err));
      if (error.code === "forbidden" && added.length > 0) {
        for (const w of added) {
          this.ctx.events.subscribeError(w.filter, error);
        }
        await this.change(wanted.filter((w) => !added.includes(w)), positions);
        return;
      }
      const { code, reason } = closeFor(error, 1006);
      this.lost(generation, code, reason);
    }
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

/**
 * A channel or pattern as one `channel=` query value: the server splits values at commas, so a
 * comma in the name is escaped as `\,` and a backslash as `\\`. `URLSearchParams` then
 * percent-encodes the rest.
 */
export function channelParam(name: string): string {
  return name.replace(/[\\,]/g, (c) => `\\${c}`);
}

/**
 * A channel as one URL path segment, `/` included (`a//b` is `a%2F%2Fb`), so that empty levels,
 * `%`, `?` and `#` reach the server as they are, and a name ending in `/history` is not mistaken
 * for the history endpoint. The names `.` and `..` cannot be sent this way: URL parsers remove
 * them as dot segments even when percent-encoded (see `pathless`).
 */
export function channelPath(name: string): string {
  return encodeURIComponent(name);
}

/** Whether `name` cannot be sent as a URL path segment (see `channelPath`). */
export function pathless(name: string): boolean {
  return name === "." || name === "..";
}

/** Publishes over `POST /api/publish`; a network failure is `disconnected` so the hub may retry. */
export async function httpPublish(ctx: TransportContext, channel: string, data: unknown, key: string): Promise<Ack> {
  let response: Response;
  try {
    response = await ctx.fetch(`${ctx.baseUrl}/api/publish`, {
      method: "POST",
      headers: authHeaders(ctx, { "content-type": "application/json" }),
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
    const info: SubscribedReport = { channel, recovered: entry["recovered"] === true };
    if (position) {
      info.position = position;
    }
    events.subscribed(info);
  }
}
