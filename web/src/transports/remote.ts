/**
 * A hub over a family the LiveHub client does not speak (SignalR, MQTT): the reconnect loop, the
 * status the indicator shows, and the pages' subscriptions with their recovery, around a `Link`,
 * one connection made by that family's official client (`link.ts`). The client's code is loaded
 * on the first connection attempt (`load`), so the default bundle does not carry it.
 */

import { Backoff } from "../../../clients/js/src/backoff.js";
import { Emitter } from "../../../clients/js/src/emitter.js";
import { LiveHubError, Subscription, type ConnectionState, type Message, type Position, type SubscribeOptions } from "../../../clients/js/src/index.js";
import type { HubFallback, HubStateChange, HubStatusView, RemoteTransport } from "./hub.js";
import type { Link, LinkEvents, LinkOpener, LinkSubscribed } from "./link.js";

export interface RemoteHubOptions {
  /** Loads the family's code and gives the opener; called before each attempt (the import is cached). */
  load(): Promise<LinkOpener>;
  /** Milliseconds an attempt may take before it counts as failed. */
  openTimeout?: number;
}

export interface RemoteHubEvents extends Record<string, unknown> {
  state: HubStateChange;
  status: HubStatusView;
  error: LiveHubError;
  circuit: { open: boolean };
  fallback: HubFallback;
}

/** Milliseconds an attempt (loading the code included) may take, as the LiveHub client's `openTimeout`. */
const OPEN_TIMEOUT_MS = 5000;
/** Reconnect delays, as the LiveHub client's defaults: 500 ms doubling to 5 s, reset after 10 s connected. */
const BACKOFF = { base: 500, cap: 5000, stableAfter: 10_000 };
/** Refusals the same credential would get again: stop and say so rather than retry. */
const PERMANENT = new Set(["unauthorized", "forbidden", "origin_not_allowed", "token_not_yet_valid", "token_expired"]);

export class RemoteHub extends Emitter<RemoteHubEvents> {
  private currentState: ConnectionState = "disconnected";
  private running = false;
  private link: Link | null = null;
  private attempt = 0;
  private retryAt: number | null = null;
  private staleSince: number | null = null;
  private statusKey = "";
  private wake: (() => void) | null = null;
  /** Ends the wait of `run` for the current link to close; `close()` calls it, since a closed link says nothing. */
  private linkEnded: ((error: LiveHubError | null) => void) | null = null;
  /** Counts connection attempts: a link of an earlier one delivers nothing more. */
  private generation = 0;
  private readonly backoff = new Backoff(BACKOFF.base, BACKOFF.cap, BACKOFF.stableAfter);
  private readonly subs = new Map<string, Set<Subscription>>();
  /** Where each channel stands: the recovery point of the next subscribe. */
  private readonly positions = new Map<string, Position>();
  /** The last publication handed over per channel: drops what a recovery or a `latest` read repeats. */
  private readonly delivered = new Map<string, Position>();
  /** Channels subscribed on an earlier link: their next subscribe is a resumption. */
  private readonly resumable = new Set<string>();
  /** Channels that delivered a live publication on the current link: a `latest` read after it would be older. */
  private readonly liveOnLink = new Set<string>();

  constructor(
    readonly name: RemoteTransport,
    private readonly options: RemoteHubOptions,
  ) {
    super();
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get status(): HubStatusView {
    return {
      state: this.currentState,
      transport: this.currentState === "connected" ? this.name : null,
      retryAt: this.retryAt,
      staleSince: this.staleSince,
      attempt: this.attempt,
    };
  }

  connect(): void {
    if (this.running) {
      return;
    }
    this.running = true;
    this.attempt = 0;
    void this.run();
  }

  close(): void {
    if (!this.running) {
      return;
    }
    this.running = false;
    this.wake?.();
    this.linkEnded?.(null);
    this.link?.close();
    this.link = null;
    for (const set of this.subs.values()) {
      for (const sub of set) {
        sub.stop();
      }
    }
    this.setState("disconnected");
  }

  retryNow(): void {
    if (!this.running) {
      this.connect();
    } else {
      this.wake?.();
    }
  }

  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    const sub = new Subscription(channel, options, (s) => this.unsubscribe(s));
    let set = this.subs.get(channel);
    if (!set) {
      set = new Set();
      this.subs.set(channel, set);
      if (this.link) {
        void this.subscribeOn(this.link, channel);
      }
    }
    set.add(sub);
    return sub;
  }

  private unsubscribe(sub: Subscription): void {
    const set = this.subs.get(sub.channel);
    if (!set?.delete(sub) || set.size > 0) {
      return;
    }
    this.subs.delete(sub.channel);
    this.positions.delete(sub.channel);
    this.delivered.delete(sub.channel);
    this.resumable.delete(sub.channel);
    this.link?.unsubscribe(sub.channel).catch(() => {
      // The link is going away: the server forgets its subscriptions with it.
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
      let end: (error: LiveHubError | null) => void = () => {};
      const ended = new Promise<LiveHubError | null>((resolve) => {
        end = resolve;
      });
      this.linkEnded = end;
      const generation = ++this.generation;
      const events: LinkEvents = {
        message: (m) => {
          if (generation === this.generation && this.running) {
            this.onMessage(m);
          }
        },
        closed: (error) => end(error ? asError(error, "disconnected") : null),
      };
      let link: Link;
      try {
        link = await this.open(events);
      } catch (err) {
        if (!this.running) {
          return;
        }
        const error = asError(err, "transport_failed");
        if (error.code === "transport_disabled") {
          // Retrying a family the server switched off would never work: the page picks another.
          this.emit("fallback", { from: this.name, reason: error.message, code: error.code });
          this.halt(error);
          return;
        }
        if (PERMANENT.has(error.code)) {
          this.halt(error);
          return;
        }
        this.emit("error", error);
        this.attempt++;
        await this.pause(this.backoff.next());
        continue;
      }
      if (!this.running) {
        link.close();
        return;
      }
      this.link = link;
      this.liveOnLink.clear();
      this.attempt = 0;
      this.setState("connected");
      for (const channel of this.subs.keys()) {
        void this.subscribeOn(link, channel);
      }
      const since = Date.now();
      const error = await ended;
      this.backoff.connectionEnded(Date.now() - since);
      if (!this.running) {
        return;
      }
      this.link = null;
      link.close();
      if (error && PERMANENT.has(error.code)) {
        this.halt(error);
        return;
      }
      if (error) {
        this.emit("error", error);
      }
      this.attempt = 1;
      await this.pause(this.backoff.next());
    }
  }

  /** Loads the family's code and opens a link, within `openTimeout`. */
  private async open(events: LinkEvents): Promise<Link> {
    const timeout = this.options.openTimeout ?? OPEN_TIMEOUT_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let late = false;
    const opening = this.options.load().then((opener) => opener(events));
    // A link that opens after the timeout is closed at once: its attempt has been given up.
    opening.then(
      (link) => {
        if (late) {
          link.close();
        }
      },
      () => {},
    );
    try {
      return await Promise.race([
        opening,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            late = true;
            reject(new LiveHubError("transport_failed", `${this.name} did not open within ${timeout} ms`));
          }, timeout);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Subscribes `channel` on `link`, resuming from its position when it was subscribed before. */
  private async subscribeOn(link: Link, channel: string): Promise<void> {
    const resuming = this.resumable.has(channel);
    let answer: LinkSubscribed;
    try {
      answer = await link.subscribe(channel, resuming ? this.positions.get(channel) : undefined);
    } catch (err) {
      if (link === this.link) {
        this.forEach(channel, (s) => s.notify("error", asError(err, "subscribe_failed")));
      }
      return;
    }
    if (link !== this.link || !this.subs.has(channel)) {
      return;
    }
    this.resumable.add(channel);
    const recovery = answer.recovered ? "recovered" : resuming ? "unrecovered" : "not-needed";
    if (!answer.recovered) {
      if (answer.position) {
        this.positions.set(channel, answer.position);
      }
      if (resuming) {
        // A fresh start: what follows is new to the page, even at offsets it saw before.
        this.delivered.delete(channel);
        this.forEach(channel, (s) => s.notify("unrecovered", { channel, position: answer.position }));
      }
    }
    this.forEach(channel, (s) => s.notify("subscribed", { channel, position: answer.position, recovery, recovered: answer.recovered }));
    const wantsLatest = [...(this.subs.get(channel) ?? [])].some((s) => s.options.latest === true);
    if (!answer.recovered && wantsLatest) {
      const latest = await link.latest(channel).catch(() => null);
      // Live publications are newer than what the read found: it only fills in before the first.
      if (latest && link === this.link && !this.liveOnLink.has(channel)) {
        this.deliver(latest);
      }
    }
  }

  private onMessage(m: Message): void {
    this.liveOnLink.add(m.channel);
    this.deliver(m);
  }

  private deliver(m: Message): void {
    const last = this.delivered.get(m.channel);
    if (last && last.epoch === m.epoch && m.offset <= last.offset) {
      return;
    }
    const position = { offset: m.offset, epoch: m.epoch };
    this.delivered.set(m.channel, position);
    this.positions.set(m.channel, position);
    this.forEach(m.channel, (s) => s.deliver(m));
  }

  private forEach(channel: string, f: (s: Subscription) => void): void {
    for (const sub of this.subs.get(channel) ?? []) {
      f(sub);
    }
  }

  /** Stops after a refusal the same credential would get again. */
  private halt(error: LiveHubError): void {
    this.emit("error", error);
    this.running = false;
    this.setState("disconnected");
  }

  /** Waits `ms` before the next attempt, with `retryAt` set; `retryNow()` ends it. */
  private async pause(ms: number): Promise<void> {
    this.retryAt = Date.now() + ms;
    this.setState("reconnecting");
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = null;
    this.retryAt = null;
    this.emitStatus();
  }

  private setState(state: ConnectionState): void {
    if (state !== this.currentState) {
      if (state === "connected") {
        this.staleSince = null;
      } else if (this.currentState === "connected") {
        this.staleSince = Date.now();
      }
      this.currentState = state;
      this.emit("state", { state, transport: state === "connected" ? this.name : null });
    }
    this.emitStatus();
  }

  private emitStatus(): void {
    const status = this.status;
    const key = `${status.state} ${status.transport} ${status.retryAt} ${status.staleSince} ${status.attempt}`;
    if (key !== this.statusKey) {
      this.statusKey = key;
      this.emit("status", status);
    }
  }
}

/** `err` as a `LiveHubError`, keeping the code of a `linkError` and using `code` otherwise. */
function asError(err: unknown, code: string): LiveHubError {
  if (err instanceof LiveHubError) {
    return err;
  }
  if (err instanceof Error) {
    const own = (err as { code?: unknown }).code;
    return new LiveHubError(typeof own === "string" ? own : code, err.message);
  }
  return new LiveHubError(code, String(err));
}
