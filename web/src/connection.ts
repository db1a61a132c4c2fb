/**
 * The hub's lifecycle: one hub at a time, pinned to the transport the user picked (a LiveHub for
 * the client's own transports, a `RemoteHub` for SignalR and MQTT), with every page's
 * subscriptions carried over when the transport changes; plus the connection indicator, the
 * transport selector and the presence counter in the top bar.
 */

import { ALL_TRANSPORTS, LiveHub, type LiveHubError, type Message, type SubscribeOptions, type Subscription } from "../../clients/js/src/index.js";
import { logActivity } from "./activity.js";
import { PAGE_TOKEN } from "./credentials.js";
import { byId, setText } from "./dom.js";
import { num } from "./format.js";
import { isString, load, save } from "./prefs.js";
import { StaleView } from "./stale.js";
import { remoteHub } from "./transports/families.js";
import { MODES, TRANSPORT_TEXT, isRemote, type DashTransport, type Hub, type HubStateChange, type Mode } from "./transports/hub.js";

export type { Mode };

/** What a page does with a channel's publications. */
export interface Listener {
  /** One publication (unbuffered subscriptions). */
  message?(m: Message): void;
  /** Publications gathered over `buffer` ms (buffered subscriptions). */
  batch?(ms: Message[]): void;
  /** The server could not fill a gap: reload from history. */
  unrecovered?(): void;
}

interface Want {
  channel: string;
  options: SubscribeOptions;
  listener: Listener;
  sub: Subscription | null;
  /** The last publication handed to the page; a new hub's `latest` repeats it, and it is dropped. */
  last: { offset: number; epoch: string } | null;
}

/** The resubscribe answers of one reconnect arrive one by one; gaps reported within this window share a feed entry. */
const GAP_WINDOW_MS = 500;

/**
 * A client error as one plain sentence for the feed: a failed request says the server is
 * unreachable rather than quoting the browser's `TypeError: Failed to fetch`; refusals keep the
 * server's message, which names the problem.
 */
export function describeError(err: LiveHubError): string {
  if (err.code === "transport_failed" || err.code === "disconnected") {
    return "The server is unreachable";
  }
  return err.message.replace(/:\s*(TypeError|Error)\b.*$/s, "");
}

function isMode(value: unknown): value is Mode {
  return isString(value) && (MODES as readonly string[]).includes(value);
}

/** The mode asked for in `?transport=`, else the one stored, else automatic. */
function initialMode(): Mode {
  const asked = new URLSearchParams(location.search).get("transport");
  return isMode(asked) ? asked : load<Mode>("transport", "auto", isMode);
}

export class Connection {
  mode: Mode;
  hub: Hub;
  private readonly wants = new Set<Want>();
  /** Wants that wait for the hub to connect before they go to it (see `attach`). */
  private readonly resyncListeners = new Set<() => void>();
  private detach: (() => void)[] = [];
  /** Hubs opened so far: the first connect of a later one follows a transport switch. */
  private generation = 0;
  private everConnected = false;
  private lastTransport: DashTransport | null = null;
  /** Errors already in the feed since the last connect: a failing round repeats them all. */
  private readonly errorsShown = new Set<string>();
  /** Channels that reported a gap within `GAP_WINDOW_MS`, to be logged as one entry. */
  private readonly gaps = new Set<string>();
  private readonly stateEl = byId("conn-state");
  private readonly transportEl = byId("conn-transport");
  private readonly select = byId<HTMLSelectElement>("transport-select");
  private readonly notice = byId("notice");
  private readonly staleView = new StaleView(() => this.hub.retryNow());

  constructor() {
    this.mode = initialMode();
    this.select.value = this.mode;
    this.select.addEventListener("change", () => {
      if (isMode(this.select.value)) {
        this.setMode(this.select.value);
      }
    });
    this.rememberMode();
    this.hub = this.open();
    this.watchPresence();
  }

  /** Listens to an exact channel on the current hub and on every later one; returns the way to stop. */
  subscribe(channel: string, options: SubscribeOptions, listener: Listener): () => void {
    const want: Want = { channel, options, listener, sub: null, last: null };
    this.wants.add(want);
    this.attach(want);
    return () => {
      want.sub?.unsubscribe();
      want.sub = null;
      this.wants.delete(want);
    };
  }

  /** Calls `f` once a new hub (after a transport switch) has connected, so that pages fill the gap from history. */
  onResync(f: () => void): void {
    this.resyncListeners.add(f);
  }

  /** Closes the hub and opens one for `mode`, resubscribing everything. */
  setMode(mode: Mode): void {
    if (mode === this.mode) {
      return;
    }
    this.notice.hidden = true;
    this.mode = mode;
    this.select.value = mode;
    this.rememberMode();
    this.reopen();
  }

  /** Closes the hub and opens one for the current mode. */
  private reopen(): void {
    for (const off of this.detach) {
      off();
    }
    this.detach = [];
    this.hub.close();
    this.hub = this.open();
  }

  private open(): Hub {
    this.generation++;
    this.errorsShown.clear();
    const mode = this.mode;
    const hub: Hub = isRemote(mode)
      ? remoteHub(mode, location.origin, PAGE_TOKEN)
      : new LiveHub(location.origin, { transports: mode === "auto" ? [...ALL_TRANSPORTS] : [mode], autoConnect: false, ...(PAGE_TOKEN ? { token: PAGE_TOKEN } : {}) });
    const generation = this.generation;
    let connectedOnce = false;
    this.detach.push(
      hub.on("state", (change) => {
        const first = change.state === "connected" && !connectedOnce;
        this.showState(change, first && generation > 1);
        if (first) {
          connectedOnce = true;
          if (generation > 1) {
            for (const f of this.resyncListeners) {
              f();
            }
          }
        }
      }),
      hub.on("circuit", ({ open }) => {
        logActivity("connection", open ? "Too many failed attempts: pausing before the next try" : "Connection attempts resumed", open ? "danger" : "info");
      }),
      hub.on("error", (err) => {
        const text = describeError(err);
        if (!this.errorsShown.has(text)) {
          this.errorsShown.add(text);
          logActivity("error", text, "warning");
        }
      }),
      hub.on("status", (status) => this.staleView.update(status)),
      hub.on("fallback", ({ from, reason }) => {
        // Every transport is tried from now on: the selector says so, and the page says why.
        this.mode = "auto";
        this.select.value = "auto";
        this.rememberMode();
        const text = `${TRANSPORT_TEXT[from]} was picked, but ${reason}: switched to automatic.`;
        setText(this.notice, text);
        this.notice.hidden = false;
        logActivity("transport", text, "warning");
        if (isRemote(from)) {
          // A LiveHub falls back by itself; another family's hub stops, and a LiveHub takes over.
          this.reopen();
        }
      }),
    );
    this.hub = hub;
    // Subscribing before connecting lets the first transport open with every channel at once.
    for (const want of this.wants) {
      want.sub = null;
      this.attach(want);
    }
    hub.connect();
    return hub;
  }

  /** Subscribes `want` on the current hub. */
  private attach(want: Want): void {
    const sub = this.hub.subscribe(want.channel, want.options);
    want.sub = sub;
    const fresh = (m: Message): boolean => {
      const last = want.last;
      if (last && last.epoch === m.epoch && m.offset <= last.offset) {
        return false;
      }
      want.last = { offset: m.offset, epoch: m.epoch };
      return true;
    };
    const { listener } = want;
    if (listener.message) {
      const f = listener.message;
      sub.on("message", (m) => {
        if (fresh(m)) {
          f(m);
        }
      });
    }
    if (listener.batch) {
      const f = listener.batch;
      sub.on("batch", (ms) => {
        const news = ms.filter(fresh);
        if (news.length > 0) {
          f(news);
        }
      });
    }
    sub.on("unrecovered", () => {
      this.noteGap(want.channel);
      listener.unrecovered?.();
    });
    sub.on("error", (err) => logActivity("error", `${want.channel}: ${err.message}`, "danger"));
  }

  /** Updates the indicator; `switched` says this is the first connect after a transport switch. */
  private showState(change: HubStateChange, switched = false): void {
    const { state, transport } = change;
    // The indicator's text and data-state are the StaleView's, from `status`.
    setText(this.transportEl, state === "connected" ? (transport ?? "") : "");
    this.stateEl.title = state === "connected" && transport ? `Connected via ${transport}` : "";
    this.transportEl.dataset.mode = this.mode;

    if (state === "connected" && transport) {
      if (!this.everConnected) {
        logActivity("connection", `Connected via ${transport}`, "ok");
      } else if (switched) {
        logActivity("transport", this.mode === "auto" ? `Automatic transport: connected via ${transport}` : `Switched to ${transport}`, "ok");
      } else if (this.lastTransport && this.lastTransport !== transport) {
        logActivity("transport", `Now on ${transport} (was ${this.lastTransport})`, "ok");
      } else {
        logActivity("connection", `Reconnected via ${transport}`, "ok");
      }
      this.everConnected = true;
      this.lastTransport = transport;
      this.errorsShown.clear();
    } else if (state === "reconnecting" && this.stateEl.dataset.was === "connected") {
      logActivity("connection", "Connection lost: reconnecting", "warning");
    } else if (state === "disconnected" && this.stateEl.dataset.was !== "disconnected") {
      logActivity("connection", "Disconnected", "danger");
    }
    this.stateEl.dataset.was = state;
  }

  /** After a server restart every channel reports a gap at once: one feed entry says it for all. */
  private noteGap(channel: string): void {
    if (this.gaps.size === 0) {
      setTimeout(() => {
        const channels = [...this.gaps];
        this.gaps.clear();
        const what = channels.length === 1 ? channels[0] : `${channels.length} channels`;
        logActivity("data", `Could not recover ${what} after the reconnect: reloaded from history`, "warning");
      }, GAP_WINDOW_MS);
    }
    this.gaps.add(channel);
  }

  private rememberMode(): void {
    save("transport", this.mode);
    // The selector may cut a long name short; its tooltip says it whole.
    this.select.title = `Transport: ${this.mode === "auto" ? "automatic" : TRANSPORT_TEXT[this.mode]}`;
    const url = new URL(location.href);
    if (this.mode === "auto") {
      url.searchParams.delete("transport");
    } else {
      url.searchParams.set("transport", this.mode);
    }
    if (url.href !== location.href) {
      history.replaceState(history.state, "", url);
    }
  }

  /** `#clients-count`: the connections `$sys/presence` reports. */
  private watchPresence(): void {
    const count = byId("clients-count");
    const label = byId("clients-label");
    this.subscribe("$sys/presence", { latest: true }, {
      message: (m) => {
        const data = m.data as { connections?: unknown; transports?: Record<string, unknown> } | null;
        if (data && typeof data.connections === "number") {
          setText(count, String(data.connections));
          setText(label, data.connections === 1 ? "client" : "clients");
          const parts = Object.entries(data.transports ?? {}).map(([name, n]) => `${name}: ${String(n)}`);
          const holder = count.parentElement;
          if (holder) {
            holder.title = `${num(data.connections)} connected ${data.connections === 1 ? "client" : "clients"}${parts.length ? ` (${parts.join(", ")})` : ""}`;
          }
        }
      },
    });
  }
}
