/** The transports, in the default fallback order. */
export type TransportName = "websocket" | "sse" | "long-polling" | "polling";

/** The default fallback order. */
export const ALL_TRANSPORTS: readonly TransportName[] = ["websocket", "sse", "long-polling", "polling"];

/** Where a channel's stream stands: the offset of the last publication seen, within an epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

/** One publication as the application sees it; `subscribe<T>()` types `data` as `T`. */
export interface Message<T = unknown> {
  channel: string;
  /** The published value; binary data arrives as a `Uint8Array`. */
  data: T;
  offset: number;
  epoch: string;
  /** Server time of publication, in milliseconds since the Unix epoch. */
  ts: number;
}

/** The server's answer to a publish. */
export interface Ack {
  channel: string;
  offset: number;
  epoch: string;
  /** True when the server had already stored this publish (a retry after a lost ack). */
  duplicate: boolean;
}

/** The connection state. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "disconnected";

/** Payload of the hub's `state` event. */
export interface StateChange {
  state: ConnectionState;
  transport: TransportName | null;
  /** Failed connection rounds in a row. */
  attempt: number;
  /** When reconnecting: milliseconds until the next try. */
  delay?: number;
}

/**
 * What a (re)subscribe did about publications missed while disconnected: `not-needed` (a first
 * subscription, nothing to recover), `recovered` (the server returned exactly what was missed)
 * or `unrecovered` (it could not: reload state from `latest` or history).
 */
export type Recovery = "not-needed" | "recovered" | "unrecovered";

/** Payload of a subscription's `subscribed` event, on every (re)subscribe. */
export interface SubscribedInfo {
  channel: string;
  position?: Position;
  /** What happened to publications missed while disconnected. */
  recovery: Recovery;
  /**
   * True only when recovery was requested and the server returned exactly what was missed.
   * @deprecated Read `recovery`: `recovered: false` is also what a first subscription reports.
   */
  recovered: boolean;
}

/** The hub's connection status, for applications that show whether their data is live. */
export interface HubStatus {
  state: ConnectionState;
  /** The transport in use, when connected. */
  transport: TransportName | null;
  /** When the next connection attempt is due (milliseconds since the Unix epoch), while waiting for it. */
  retryAt: number | null;
  /**
   * Since when (milliseconds since the Unix epoch) what the subscriptions delivered may be out
   * of date: set when a connection is lost, `null` again once connected.
   */
  staleSince: number | null;
  /** Failed connection rounds in a row. */
  attempt: number;
}

/** Payload of the hub's `fallback` event: a pinned transport is disabled, so the hub tries every transport. */
export interface FallbackInfo {
  /** The pinned transport that the server refused. */
  from: TransportName;
  /** The transports tried from now on, in order. */
  to: TransportName[];
  /** The server's refusal, for example `transport_disabled` "sse is disabled on this server". */
  reason: string;
  code: string;
}

/** Options of `new LiveHub(url, options)`. */
export interface LiveHubOptions {
  /**
   * The credential: a JWT, or a function that returns one (or a promise of one), for example
   * from the application's backend. A function is called before a connection attempt when there
   * is no token yet or it expires within `refreshMargin`, whenever the server answers
   * `token_expired`, and `refreshMargin` before the token's `exp` while connected. Sent as
   * `?token=` on the WebSocket and as `Authorization: Bearer` on every HTTP request.
   */
  token?: string | (() => string | Promise<string>);
  /** Milliseconds before a token's `exp` at which a token function is asked for a new one (default 30000; at most half the token's lifetime). */
  refreshMargin?: number;
  /** Transports to try, in order; one element pins a transport. */
  transports?: TransportName[];
  /** Milliseconds a transport may take to open before the next one is tried (default 5000). */
  openTimeout?: number;
  /** Reconnect delays: exponential from `base` (500) to `cap` (5000) ms with jitter, reset after a connection lasted `stableAfter` (10000) ms. */
  backoff?: { base?: number; cap?: number; stableAfter?: number };
  /**
   * After `failures` (5) failed connection rounds in a row the breaker opens: no round is tried
   * for a jittered time that starts at `base` (1000 ms) and doubles up to `cap` (5000 ms) while
   * rounds keep failing. While waiting, the hub probes `GET /health` every `probeEvery` ms
   * (1000; 0 turns probing off): a server that answers again after being unreachable ends the
   * wait, and a wait that ends while it is still unreachable opens the breaker again without a
   * full round. `cooldown` is the old name of `cap`.
   */
  circuitBreaker?: { failures?: number; base?: number; cap?: number; probeEvery?: number; cooldown?: number };
  /** Milliseconds between requests of the `polling` transport (default 1000). */
  pollInterval?: number;
  /** Seconds the server may hold a long poll (default 25). */
  longPollTimeout?: number;
  /** Connect in the constructor (default true). */
  autoConnect?: boolean;
  /** WebSocket constructor; defaults to the global one (browsers, Node 22). Node 20: pass the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation; defaults to the global one. */
  fetch?: typeof fetch;
}

/**
 * An event handler property. Written as a method's type so that it is checked bivariantly: the
 * `ws` package's handlers take its own richer event types, and a class with them must still fit
 * without a cast under `strict`.
 */
type Handler<E> = { bivarianceHack(ev: E): void }["bivarianceHack"];

/** The part of the WebSocket API the client uses; the browsers' `WebSocket` and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: the global `WebSocket`, or `ws`'s default export as it is. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of `hub.subscribe(channel, options)`. */
export interface SubscribeOptions {
  /** Deliver the channel's latest publication right away. */
  latest?: boolean;
  /** Hand messages over in batches every `buffer` milliseconds (event `batch`) instead of one `message` event each. */
  buffer?: number;
}
