import { Backoff, CircuitBreaker } from "./backoff.js";
import { matches } from "./cursor.js";
import { Emitter } from "./emitter.js";
import { LiveHubError } from "./errors.js";
import { reachable, websocketDisabled } from "./probe.js";
import { Subscription } from "./subscription.js";
import { TokenManager, type TokenSource } from "./token.js";
import { LongPollTransport } from "./transports/longpoll.js";
import { PollingTransport } from "./transports/polling.js";
import { SseTransport } from "./transports/sse.js";
import type { CloseReason, SubscribedReport, Transport, TransportContext, Wanted } from "./transports/transport.js";
import { WebSocketTransport } from "./transports/websocket.js";
import {
  ALL_TRANSPORTS,
  type Ack,
  type ConnectionState,
  type FallbackInfo,
  type HubStatus,
  type LiveHubOptions,
  type Message,
  type Position,
  type StateChange,
  type SubscribeOptions,
  type TransportName,
  type WebSocketConstructor,
} from "./types.js";

/** Events of the hub. */
export interface HubEvents extends Record<string, unknown> {
  state: StateChange;
  /** `hub.status` changed: the state, when the next attempt is due, since when data is stale. */
  status: HubStatus;
  /**
   * The pinned transport is disabled on the server: the hub now tries every other transport in
   * the default order instead of retrying the refused one forever.
   */
  fallback: FallbackInfo;
  /** The circuit breaker opened (stopped trying for a while) or closed again. */
  circuit: { open: boolean };
  /**
   * Something went wrong that no promise reports: a refused transport, a terminal close, a
   * refused credential (`unauthorized`, `forbidden`, … then state `disconnected`).
   */
  error: LiveHubError;
}

interface PendingPublish {
  channel: string;
  data: unknown;
  key: string;
  sends: number;
  /** Already sent once more with a fresh token after a `token_expired`. */
  renewed: boolean;
  inFlight: boolean;
  resolve(ack: Ack): void;
  reject(err: LiveHubError): void;
}

/**
 * One connection to a livehub server over the best transport that works, reconnecting with
 * back-off and recovering every subscription so that the application sees each publication
 * exactly once, in order.
 */
export class LiveHub extends Emitter<HubEvents> {
  private readonly baseUrl: string;
  private transports: TransportName[];
  private readonly openTimeout: number;
  private readonly backoff: Backoff;
  private readonly breaker: CircuitBreaker;
  private readonly ctx: TransportContext;
  private readonly WebSocket: WebSocketConstructor | undefined;
  /** Milliseconds between `GET /health` probes while waiting to reconnect; 0 turns probing off. */
  private readonly probeEvery: number;
  private retryAt: number | null = null;
  private staleSince: number | null = null;
  /** The last status emitted, to emit `status` only on a change. */
  private statusKey = "";
  /** `retryNow()` (or the browser coming back online or visible) asked to end the current wait. */
  private retryAsked = false;
  private probing: AbortController | null = null;

  private currentState: ConnectionState = "disconnected";
  private active: Transport | null = null;
  private running = false;
  private wake: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private transportClosed: ((reason: CloseReason) => void) | null = null;
  private readonly subs = new Map<string, Set<Subscription>>();
  /** Recovery point per concrete channel: where to resume after a reconnect. */
  private readonly positions = new Map<string, Position>();
  /** Last delivered per concrete channel: drops what a recovery or a second transport repeats. */
  private readonly delivered = new Map<string, Position>();
  /** Channels for which a recovery was asked on the current connection. */
  private readonly resuming = new Set<string>();
  private readonly pending = new Map<string, PendingPublish>();
  private readonly clientKey = Math.random().toString(36).slice(2, 10);
  private publishSeq = 0;
  private removeBrowserListeners: (() => void) | null = null;
  private readonly tokens: TokenManager;
  /** Filters the server refused as `forbidden` under the current token: not asked for again until `setToken`. */
  private readonly refused = new Map<string, LiveHubError>();

  constructor(url: string, options: LiveHubOptions = {}) {
    super();
    this.baseUrl = url.replace(/\/+$/, "");
    this.transports = options.transports?.length ? [...options.transports] : [...ALL_TRANSPORTS];
    this.openTimeout = options.openTimeout ?? 5000;
    this.backoff = new Backoff(options.backoff?.base ?? 500, options.backoff?.cap ?? 5000, options.backoff?.stableAfter ?? 10_000);
    const breaker = options.circuitBreaker ?? {};
    this.breaker = new CircuitBreaker(breaker.failures ?? 5, breaker.base ?? 1000, breaker.cap ?? breaker.cooldown ?? 5000);
    this.probeEvery = breaker.probeEvery ?? 1000;
    this.WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.tokens = new TokenManager(options.token, options.refreshMargin ?? 30_000, {
      active: () => (this.currentState === "connected" ? this.active : null),
      apply: (transport) => transport.reauthenticate(this.wanted(), this.positions),
      reconnect: (transport) => {
        if (this.active === transport) {
          this.transportClosed?.({ code: 1000, reason: "reconnecting with a new token", reconnect: true });
        }
      },
      error: (err) => this.emit("error", err),
    });
    this.ctx = {
      baseUrl: this.baseUrl,
      fetch: fetchImpl,
      longPollTimeout: options.longPollTimeout ?? 25,
      pollInterval: options.pollInterval ?? 1000,
      token: () => this.tokens.current,
      clientId: this.clientKey,
      events: {
        message: (m) => this.onMessage(m),
        subscribed: (info) => this.onSubscribed(info),
        subscribeError: (filter, err) => this.onSubscribeError(filter, err),
        closed: (reason) => this.transportClosed?.(reason),
      },
    };
    if (options.autoConnect ?? true) {
      this.connect();
    }
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** The transport in use, when connected. */
  get transport(): TransportName | null {
    return this.currentState === "connected" ? (this.active?.name ?? null) : null;
  }

  /**
   * Whether the data is live: the state, when the next connection attempt is due (`retryAt`,
   * while waiting), and since when the subscriptions' data may be out of date (`staleSince`,
   * from the moment a connection is lost until the hub is connected again). Changes are emitted
   * as `status`.
   */
  get status(): HubStatus {
    return {
      state: this.currentState,
      transport: this.transport,
      retryAt: this.retryAt,
      staleSince: this.staleSince,
      attempt: this.attempt,
    };
  }

  /**
   * Ends the wait before the next connection attempt (back-off or an open circuit breaker) and
   * tries at once. Does nothing while connected or connecting; after a refusal left the hub
   * `disconnected`, it is `connect()`.
   */
  retryNow(): void {
    if (!this.running) {
      this.connect();
      return;
    }
    if (this.retryAt !== null) {
      this.breaker.halfOpen(Date.now());
      this.hurry();
    }
  }

  /** Starts connecting (the constructor does this unless `autoConnect: false`). */
  connect(): void {
    if (this.running) {
      return;
    }
    this.running = true;
    this.setState("connecting", 0);
    this.listenToBrowser();
    void this.run();
  }

  /**
   * Listens to `channel` (or an MQTT-style pattern); subscribing again returns another listener on
   * the same subscription. `T` types the publications' `data` (unchecked: it is what the
   * application says the channel carries).
   */
  subscribe<T = unknown>(channel: string, options: SubscribeOptions = {}): Subscription<T> {
    const sub = new Subscription<T>(channel, options, (s) => this.unsubscribe(s as Subscription));
    let set = this.subs.get(channel);
    const isNew = !set;
    if (!set) {
      set = new Set();
      this.subs.set(channel, set);
    }
    set.add(sub as Subscription);
    if (isNew) {
      this.subsVersion++;
      this.active?.update(this.wanted(), this.positions);
    }
    const refusal = this.refused.get(channel);
    if (refusal) {
      // Refused already under this token: say so to the new listener too (once it can listen).
      queueMicrotask(() => sub.notify("error", refusal));
    }
    return sub;
  }

  /**
   * Replaces the credential (a token, or a function that fetches one). A connected hub goes on
   * with it without reconnecting where the transport allows (WebSocket `refresh`; SSE reopens
   * its stream from the current positions); subscriptions refused as `forbidden` are asked for
   * again. After a refusal left the hub `disconnected`, call `connect()` next.
   */
  setToken(token: TokenSource): void {
    this.refused.clear();
    if (!this.tokens.set(token)) {
      this.hurry(); // waiting to reconnect: try the new token now
    }
  }

  /**
   * Publishes `data` on `channel`. Resolves with the server's acknowledgement; rejects with a
   * `LiveHubError` carrying the server's code. A publish whose connection drops before the
   * answer is sent once more after the reconnect, with the same idempotency key, so the server
   * stores it once.
   */
  publish(channel: string, data: unknown): Promise<Ack> {
    if (!this.running) {
      return Promise.reject(new LiveHubError("closed", "the hub is closed"));
    }
    const key = `${this.clientKey}-${++this.publishSeq}`;
    return new Promise<Ack>((resolve, reject) => {
      const entry: PendingPublish = { channel, data, key, sends: 0, renewed: false, inFlight: false, resolve, reject };
      this.pending.set(key, entry);
      if (this.currentState === "connected") {
        this.send(entry);
      }
    });
  }

  /** Closes the connection and releases every timer, socket and listener. */
  close(): void {
    this.shutdown(new LiveHubError("closed", "the hub was closed before the server answered"), true);
  }

  /**
   * Stops connecting, rejects pending publishes with `error`, and (when the application closes
   * the hub, not after a refusal it may fix and `connect()` again) stops the subscriptions.
   */
  private shutdown(error: LiveHubError, stopSubs: boolean): void {
    if (!this.running && this.currentState === "disconnected") {
      return;
    }
    this.running = false;
    this.tokens.cancel();
    this.removeBrowserListeners?.();
    this.removeBrowserListeners = null;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.probing?.abort();
    this.wake?.();
    this.active?.close();
    this.transportClosed?.({ code: 1000, reason: "closed by the client", reconnect: false });
    for (const entry of this.pending.values()) {
      entry.reject(error);
    }
    this.pending.clear();
    if (stopSubs) {
      for (const set of this.subs.values()) {
        for (const sub of set) {
          sub.stop();
        }
      }
    }
    this.setState("disconnected", 0);
  }

  /**
   * A refusal that the same credential would get again: report it and stop, without hammering
   * the server. An SSE or long-poll request refused as `forbidden` cannot say which of its
   * channels was refused, so every subscription it named gets the error.
   */
  private halt(error: LiveHubError): void {
    if (error.code === "forbidden") {
      for (const w of this.wanted()) {
        this.forEachSub(w.filter, (s) => s.notify("error", error));
      }
    }
    this.emit("error", error);
    this.shutdown(error, false);
  }

  private async run(): Promise<void> {
    this.attempt = 0;
    while (this.running) {
      await this.untilVisible();
      const hold = this.breaker.wait(Date.now());
      if (hold > 0) {
        const outcome = await this.pause(hold, true);
        if (!this.running) {
          return;
        }
        if (outcome === "down") {
          // Still unreachable: a full round would fail too. Open again, for longer.
          this.attempt++;
          this.breaker.failure(Date.now());
          continue;
        }
        this.breaker.halfOpen(Date.now());
      }
      this.retryAsked = false;
      this.setState(this.attempt === 0 ? "connecting" : "reconnecting", this.attempt);
      const { transport, fatal, retryAfter } = await this.openAny();
      if (!this.running) {
        transport?.close();
        return;
      }
      if (fatal) {
        this.halt(fatal);
        return;
      }
      if (!transport) {
        this.attempt++;
        if (this.breaker.failure(Date.now())) {
          this.emit("circuit", { open: true });
        }
        if (!this.breaker.isOpen) {
          // A server that asked for a pause (429) is up: probing it would end the pause early.
          await this.pause(Math.max(this.backoff.next(), (retryAfter ?? 0) * 1000), retryAfter === undefined);
        }
        continue;
      }
      if (this.breaker.success()) {
        this.emit("circuit", { open: false });
      }
      this.attempt = 0;
      const since = Date.now();
      const reason = await this.serve(transport);
      this.backoff.connectionEnded(Date.now() - since);
      if (!this.running) {
        return;
      }
      if (!reason.reconnect) {
        // A policy close (1008) carries the refusal's code as its reason.
        const code = reason.code === 1008 && /^[a-z_]+$/.test(reason.reason) ? reason.reason : "disconnected";
        this.halt(new LiveHubError(code, `server closed the connection for good: ${reason.code} ${reason.reason}`, reason.code));
        return;
      }
      this.attempt = 1;
      await this.pause(this.backoff.next(), true);
    }
  }

  /** Failed connection rounds in a row. */
  private attempt = 0;

  /**
   * Waits `ms` before the next connection attempt, state `reconnecting` with `retryAt` set. A
   * long wait (over `probeEvery`) probes `GET /health` every `probeEvery` ms when `probe` is
   * set: a server that answers after being unreachable ends the wait early (`up`), and a wait
   * that ends while the server is unreachable says `down`. `retryNow()` ends it (`asked`).
   */
  private async pause(ms: number, probe: boolean): Promise<"elapsed" | "up" | "down" | "asked"> {
    const until = Date.now() + ms;
    const probing = probe && this.probeEvery > 0 && ms > this.probeEvery;
    this.retryAt = until;
    this.setState("reconnecting", this.attempt, ms);
    try {
      for (;;) {
        if (!this.running) {
          return "elapsed";
        }
        if (this.retryAsked) {
          this.retryAsked = false;
          return "asked";
        }
        if (Date.now() >= until) {
          // The last probe may be up to `probeEvery` old: ask again before calling it down.
          return this.unreachable && !(probe && this.probeEvery > 0 && (await this.probe())) ? "down" : "elapsed";
        }
        if (probing) {
          const wasDown = this.unreachable;
          const up = await this.probe();
          if (up && wasDown) {
            return "up";
          }
          if (!this.running || this.retryAsked) {
            continue;
          }
        }
        const left = until - Date.now();
        if (left > 0) {
          await this.sleep(probing ? Math.min(left, this.probeEvery) : left);
        }
      }
    } finally {
      this.retryAt = null;
      this.emitStatus();
    }
  }

  /** Probes `GET /health` (see `reachable`) and remembers the answer in `unreachable`. */
  private async probe(): Promise<boolean> {
    const abort = new AbortController();
    this.probing = abort;
    const up = await reachable(this.ctx.fetch, this.baseUrl, abort);
    if (this.probing === abort) {
      this.probing = null;
    }
    this.unreachable = !up;
    return up;
  }

  /**
   * Whether the last probe found the server unreachable. It outlives one wait, so that a server
   * back between two waits ends the next one at its first probe.
   */
  private unreachable = false;

  /** Ends the current wait and tries at once. */
  private hurry(): void {
    this.retryAsked = true;
    this.wake?.();
  }

  /**
   * Tries each transport in order; the first that opens in time wins. A refusal of the
   * credential ends the round, since the other transports would be refused too (see
   * `TokenManager.verdict`): `fatal` stops the hub, `retryAfter` (seconds) comes from a 429.
   */
  private async openAny(): Promise<{ transport?: Transport; fatal?: LiveHubError; retryAfter?: number }> {
    let renewed = false;
    for (let i = 0; i < this.transports.length; i++) {
      const name = this.transports[i] as TransportName;
      if (!this.running) {
        return {};
      }
      try {
        await this.tokens.ensureFresh();
      } catch (err) {
        this.emit("error", asError(err, "token_unavailable"));
        return {};
      }
      if (!this.running) {
        return {};
      }
      const generation = this.tokens.generation;
      const transport = this.make(name);
      if (!transport) {
        continue;
      }
      this.resuming.clear();
      for (const channel of this.positions.keys()) {
        this.resuming.add(channel);
      }
      let timeout: ReturnType<typeof setTimeout> | undefined;
      try {
        const timedOut = new Promise<never>((_, reject) => {
          timeout = setTimeout(() => reject(new LiveHubError("transport_failed", `${name} did not open within ${this.openTimeout} ms`)), this.openTimeout);
        });
        // Closures must be wired before opening: the transport may close right after it opened.
        this.watchClose();
        this.openedVersion = this.subsVersion;
        await Promise.race([transport.open(this.wanted(), this.positions), timedOut]);
        this.tokens.admitted(generation);
        return { transport };
      } catch (err) {
        transport.close();
        this.transportClosed = null;
        let error = asError(err, "transport_failed");
        if (name === "websocket" && this.transports.length === 1 && error.code === "transport_failed") {
          // A refused handshake tells a browser nothing; a plain GET says whether it is switched off.
          error = (await websocketDisabled(this.ctx.fetch, this.baseUrl)) ?? error;
        }
        const verdict = this.tokens.verdict(error, generation, renewed);
        if (verdict === "renew") {
          renewed = true;
          i--; // the same transport again, with a fresh token
          continue;
        }
        if (verdict === "stop") {
          return { fatal: error };
        }
        this.emit("error", error);
        if (error.code === "transport_disabled" && this.transports.length === 1) {
          // Pinned to a transport the server switched off: retrying it would never work.
          this.transports = ALL_TRANSPORTS.filter((t) => t !== name);
          this.emit("fallback", { from: name, to: [...this.transports], reason: error.message, code: error.code });
          i = -1;
          continue;
        }
        if (verdict === "back-off") {
          return error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter };
        }
      } finally {
        clearTimeout(timeout);
      }
    }
    return {};
  }

  private closedPromise: Promise<CloseReason> | null = null;
  /** Counts changes to the set of subscribed filters. */
  private subsVersion = 0;
  /** `subsVersion` when the transport being opened took its list of filters. */
  private openedVersion = 0;

  private watchClose(): void {
    this.closedPromise = new Promise<CloseReason>((resolve) => {
      this.transportClosed = (reason) => {
        this.transportClosed = null;
        resolve(reason);
      };
    });
  }

  /** Runs a connected transport until it closes. */
  private async serve(transport: Transport): Promise<CloseReason> {
    this.active = transport;
    // Subscriptions changed while the transport was opening with the list of that moment: it
    // had no way to hear of them, so hand it the current list now.
    if (this.subsVersion !== this.openedVersion) {
      transport.update(this.wanted(), this.positions);
    }
    this.retryAsked = false;
    this.unreachable = false;
    this.setState("connected", 0);
    this.tokens.connected();
    for (const entry of this.pending.values()) {
      if (!entry.inFlight) {
        this.send(entry);
      }
    }
    const reason = await (this.closedPromise ?? Promise.resolve({ code: 1006, reason: "lost", reconnect: true }));
    this.tokens.disconnected(reason.code);
    this.active = null;
    transport.close();
    return reason;
  }

  private send(entry: PendingPublish): void {
    const transport = this.active;
    if (!transport) {
      return;
    }
    entry.sends++;
    entry.inFlight = true;
    const generation = this.tokens.generation;
    transport.publish(entry.channel, entry.data, entry.key).then(
      (ack) => {
        this.pending.delete(entry.key);
        entry.resolve(ack);
      },
      (err: unknown) => {
        entry.inFlight = false;
        const error = asError(err, "disconnected");
        if (error.code === "token_expired" && this.tokens.refreshable && !entry.renewed) {
          // Refused, so not stored: send it again once there is a fresh token.
          entry.renewed = true;
          entry.sends--;
          this.tokens.renew(generation).then(
            () => {
              if (this.pending.has(entry.key) && !entry.inFlight && this.currentState === "connected") {
                this.send(entry);
              }
            },
            (e: unknown) => {
              this.pending.delete(entry.key);
              entry.reject(asError(e, "token_unavailable"));
            },
          );
        } else if (error.code !== "disconnected") {
          this.pending.delete(entry.key);
          entry.reject(error);
        } else if (entry.sends >= 2) {
          this.pending.delete(entry.key);
          entry.reject(new LiveHubError("not_acknowledged", "no answer from the server, even after a retry"));
        }
        // Otherwise it stays pending and is sent once more after the reconnect.
      },
    );
  }

  private make(name: TransportName): Transport | null {
    switch (name) {
      case "websocket":
        if (!this.WebSocket) {
          this.emit("error", new LiveHubError("unsupported", "no WebSocket implementation: pass options.WebSocket"));
          return null;
        }
        return new WebSocketTransport(this.ctx, this.WebSocket);
      case "sse":
        return new SseTransport(this.ctx);
      case "long-polling":
        return new LongPollTransport(this.ctx);
      case "polling":
        return new PollingTransport(this.ctx);
    }
  }

  private wanted(): Wanted[] {
    return [...this.subs.entries()]
      .filter(([filter]) => !this.refused.has(filter))
      .map(([filter, set]) => ({
        filter,
        latest: [...set].some((s) => s.options.latest === true),
      }));
  }

  private onSubscribeError(filter: string, err: LiveHubError): void {
    if (err.code === "forbidden" && this.subs.has(filter)) {
      this.refused.set(filter, err);
    }
    this.forEachSub(filter, (s) => s.notify("error", err));
  }

  private onMessage(m: Message): void {
    const last = this.delivered.get(m.channel);
    if (last && last.epoch === m.epoch && m.offset <= last.offset) {
      return;
    }
    const position = { offset: m.offset, epoch: m.epoch };
    this.delivered.set(m.channel, position);
    this.positions.set(m.channel, position);
    this.forEachSub(m.channel, (s) => s.deliver(m), true);
  }

  private onSubscribed(report: SubscribedReport): void {
    const wasResuming = this.resuming.delete(report.channel);
    const info = { ...report, recovery: report.recovered ? "recovered" : wasResuming ? "unrecovered" : "not-needed" } as const;
    if (!info.recovered && info.position) {
      // A fresh start: what follows (a latest value, a new epoch's history) is new to us, and
      // the position is where a later recovery starts.
      this.delivered.delete(info.channel);
      this.positions.set(info.channel, info.position);
      if (wasResuming) {
        this.forEachSub(info.channel, (s) => s.notify("unrecovered", { channel: info.channel, position: info.position }), true);
      }
    }
    this.forEachSub(info.channel, (s) => s.notify("subscribed", info), true);
  }

  /** Runs `f` for every subscription whose filter is `filter` (or, with `match`, matches it as a channel). */
  private forEachSub(channel: string, f: (s: Subscription) => void, match = false): void {
    for (const [filter, set] of this.subs) {
      if (filter === channel || (match && matches(filter, channel))) {
        for (const sub of set) {
          f(sub);
        }
      }
    }
  }

  private unsubscribe(sub: Subscription): void {
    const set = this.subs.get(sub.channel);
    if (!set) {
      return;
    }
    set.delete(sub);
    if (set.size === 0) {
      this.subs.delete(sub.channel);
      this.refused.delete(sub.channel);
      this.subsVersion++;
      this.active?.update(this.wanted(), this.positions);
    }
  }

  private setState(state: ConnectionState, attempt: number, delay?: number): void {
    if (state === this.currentState && delay === undefined) {
      this.emitStatus();
      return;
    }
    if (state === "connected") {
      this.staleSince = null;
    } else if (this.currentState === "connected") {
      this.staleSince = Date.now();
    }
    this.currentState = state;
    const change: StateChange = { state, transport: this.transport, attempt };
    if (delay !== undefined) {
      change.delay = delay;
    }
    this.emit("state", change);
    this.emitStatus();
  }

  /** Emits `status` when it differs from the last one emitted. */
  private emitStatus(): void {
    const status = this.status;
    const key = `${status.state} ${status.transport} ${status.retryAt} ${status.staleSince} ${status.attempt}`;
    if (key !== this.statusKey) {
      this.statusKey = key;
      this.emit("status", status);
    }
  }

  /** Waits `ms`, or less when the browser comes back online or visible, or the hub closes. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        if (this.timer) {
          clearTimeout(this.timer);
          this.timer = null;
        }
        this.wake = null;
        resolve();
      };
      this.wake = done;
      this.timer = setTimeout(done, ms);
    });
  }

  /** In browsers: no reconnect attempts while the tab is hidden; they resume when it shows. */
  private async untilVisible(): Promise<void> {
    const doc = (globalThis as { document?: Document }).document;
    while (this.running && doc && doc.visibilityState === "hidden") {
      await this.sleep(2_147_483_647);
    }
  }

  /** In browsers: reconnect at once when the network or the tab comes back. */
  private listenToBrowser(): void {
    const g = globalThis as { addEventListener?: typeof addEventListener; removeEventListener?: typeof removeEventListener; document?: Document };
    if (typeof g.addEventListener !== "function" || typeof g.removeEventListener !== "function") {
      return;
    }
    const hurry = () => {
      if (!g.document || g.document.visibilityState !== "hidden") {
        this.hurry();
      }
    };
    g.addEventListener("online", hurry);
    g.document?.addEventListener("visibilitychange", hurry);
    this.removeBrowserListeners = () => {
      g.removeEventListener?.("online", hurry);
      g.document?.removeEventListener("visibilitychange", hurry);
    };
  }
}

function asError(err: unknown, code: string): LiveHubError {
  return err instanceof LiveHubError ? err : new LiveHubError(code, String(err));
}
