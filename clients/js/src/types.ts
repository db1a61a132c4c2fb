/** The transports, in the default fallback order. */
export type TransportName = "websocket" | "sse" | "long-polling" | "polling";

/** The default fallback order. */
export const ALL_TRANSPORTS: readonly TransportName[] = ["websocket", "sse", "long-polling", "polling"];

/** Where a channel's stream stands: the offset of the last publication seen, within an epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

/** One publication as the application sees it. */
export interface Message {
  channel: string;
  /** The published value; binary data arrives as a `Uint8Array`. */
  data: unknown;
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

/** Payload of a subscription's `subscribed` event, on every (re)subscribe. */
export interface SubscribedInfo {
  channel: string;
  position?: Position;
  /** True only when recovery was requested and the server returned exactly what was missed. */
  recovered: boolean;
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
  /** Reconnect delays: exponential from `base` to `cap` ms with jitter, reset after a connection lasted `stableAfter` ms. */
  backoff?: { base?: number; cap?: number; stableAfter?: number };
  /** After `failures` failed connection rounds in a row, stop trying for `cooldown` ms. */
  circuitBreaker?: { failures?: number; cooldown?: number };
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

/** The part of the WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of `hub.subscribe(channel, options)`. */
export interface SubscribeOptions {
  /** Deliver the channel's latest publication right away. */
  latest?: boolean;
  /** Hand messages over in batches every `buffer` milliseconds (event `batch`) instead of one `message` event each. */
  buffer?: number;
}
