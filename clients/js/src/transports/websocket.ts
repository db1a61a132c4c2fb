import { matches } from "../cursor.js";
import { LiveHubError } from "../errors.js";
import type { Ack, Position, WebSocketConstructor, WebSocketLike } from "../types.js";
import {
  mayReconnect,
  resumable,
  toMessage,
  type SubscribedReport,
  type Transport,
  type TransportContext,
  type Wanted,
} from "./transport.js";

interface Pending {
  /** What the command was: a publish (answered by an `ack` with a position) or a token refresh. */
  kind: "publish" | "refresh";
  resolve(ack: Ack): void;
  reject(err: LiveHubError): void;
}

/** The native protocol over one WebSocket (JSON text frames). */
export class WebSocketTransport implements Transport {
  readonly name = "websocket" as const;
  private socket: WebSocketLike | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private subscribed = new Set<string>();
  private heard = true;
  private keepalive: ReturnType<typeof setInterval> | null = null;
  private closedByUs = false;
  private reported = false;

  constructor(
    private readonly ctx: TransportContext,
    private readonly WebSocket: WebSocketConstructor,
  ) {}

  open(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    // Only `where` goes into messages: the URL itself may carry the token.
    const where = this.ctx.baseUrl.replace(/^http/, "ws") + "/ws";
    const token = this.ctx.token();
    // Browsers cannot set headers on a WebSocket: the token goes in the query.
    const url = token ? `${where}?token=${encodeURIComponent(token)}` : where;
    return new Promise((resolve, reject) => {
      let connected = false;
      let socket: WebSocketLike;
      try {
        socket = new this.WebSocket(url);
      } catch {
        // The constructor's own error may quote the URL, token included.
        reject(new LiveHubError("transport_failed", `WebSocket to ${where} could not be created`));
        return;
      }
      this.socket = socket;
      socket.onmessage = (ev) => {
        this.heard = true;
        const msg = parse(ev.data);
        if (!msg) {
          return;
        }
        if (!connected && msg["type"] === "connected") {
          connected = true;
          this.startKeepalive(Number(msg["ping_interval"]) || 25);
          this.update(wanted, positions);
          resolve();
          return;
        }
        this.handle(msg);
      };
      // An error is always followed by a close, which tells more: a refused connection is
      // upgraded and then closed with a code and a reason.
      socket.onerror = () => {};
      socket.onclose = (ev) => {
        this.stopKeepalive();
        this.failPending();
        if (!connected) {
          reject(openError(where, ev.code, String(ev.reason ?? "")));
        } else {
          this.report(ev.code, ev.reason);
        }
      };
    });
  }

  update(wanted: Wanted[], positions: Map<string, Position>): void {
    const filters = new Set(wanted.map((w) => w.filter));
    for (const filter of [...this.subscribed]) {
      if (!filters.has(filter)) {
        this.subscribed.delete(filter);
        this.send({ action: "unsubscribe", channels: [filter] });
      }
    }
    for (const w of wanted) {
      if (this.subscribed.has(w.filter)) {
        continue;
      }
      this.subscribed.add(w.filter);
      const recover = Object.fromEntries(resumable([w], positions, matches));
      this.send({ id: this.nextId++, action: "subscribe", channels: [w.filter], recover, latest: w.latest });
    }
  }

  publish(channel: string, data: unknown, key: string): Promise<Ack> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.socket || this.socket.readyState !== 1) {
        reject(new LiveHubError("disconnected", "not connected"));
        return;
      }
      this.pending.set(id, { kind: "publish", resolve, reject });
      this.send({ id, action: "publish", channel, data, key });
    });
  }

  /** Sends the new token with `refresh`: the connection goes on with it, nothing is reopened. */
  async reauthenticate(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    const token = this.ctx.token();
    if (!token) {
      throw new LiveHubError("unauthorized", "no token to refresh the connection with");
    }
    const id = this.nextId++;
    await new Promise<Ack>((resolve, reject) => {
      if (!this.socket || this.socket.readyState !== 1) {
        reject(new LiveHubError("disconnected", "not connected"));
        return;
      }
      this.pending.set(id, { kind: "refresh", resolve, reject });
      this.send({ id, action: "refresh", token });
    });
    this.update(wanted, positions);
  }

  close(): void {
    this.closedByUs = true;
    this.stopKeepalive();
    this.failPending();
    this.socket?.close(1000, "client closed");
  }

  private handle(msg: Record<string, unknown>): void {
    const id = typeof msg["id"] === "number" ? msg["id"] : undefined;
    switch (msg["type"]) {
      case "message":
        this.ctx.events.message(toMessage(msg));
        return;
      case "subscribed": {
        const channel = String(msg["channel"]);
        const info: SubscribedReport = { channel, recovered: msg["recovered"] === true };
        if (msg["position"]) {
          info.position = msg["position"] as Position;
        }
        this.ctx.events.subscribed(info);
        // A pattern reports the named channels it recovered one by one.
        const channels = msg["channels"] as Record<string, { position?: Position; recovered?: boolean }> | undefined;
        for (const [name, entry] of Object.entries(channels ?? {})) {
          const each: SubscribedReport = { channel: name, recovered: entry.recovered === true };
          if (entry.position) {
            each.position = entry.position;
          }
          this.ctx.events.subscribed(each);
        }
        return;
      }
      case "ack":
      case "error": {
        // The `error`s for subscriptions a refreshed token drops carry no id: they fall through to
        // the per-channel branch below.
        const pending = id !== undefined ? this.pending.get(id) : undefined;
        if (pending && id !== undefined) {
          this.pending.delete(id);
          if (msg["type"] === "ack") {
            pending.resolve(msg as unknown as Ack);
          } else {
            pending.reject(new LiveHubError(String(msg["code"]), String(msg["message"])));
          }
        } else if (msg["type"] === "error" && typeof msg["channel"] === "string") {
          this.subscribed.delete(msg["channel"]);
          this.ctx.events.subscribeError(msg["channel"], new LiveHubError(String(msg["code"]), String(msg["message"])));
        }
        return;
      }
      default:
        return;
    }
  }

  /** Browsers cannot see WebSocket pings, so liveness is checked with the protocol's own ping. */
  private startKeepalive(seconds: number): void {
    this.keepalive = setInterval(() => {
      if (!this.heard) {
        // Two intervals of silence, with a ping in between: the server or the path is gone.
        this.socket?.close(4002, "no answer from the server");
        this.report(4002, "no answer from the server");
        return;
      }
      this.heard = false;
      this.send({ action: "ping" });
    }, seconds * 1000);
  }

  private stopKeepalive(): void {
    if (this.keepalive) {
      clearInterval(this.keepalive);
      this.keepalive = null;
    }
  }

  private failPending(): void {
    for (const p of this.pending.values()) {
      p.reject(new LiveHubError("disconnected", "the connection closed before the server answered"));
    }
    this.pending.clear();
  }

  private report(code: number, reason: string): void {
    if (this.closedByUs || this.reported) {
      return;
    }
    this.reported = true;
    this.stopKeepalive();
    this.ctx.events.closed({ code, reason, reconnect: mayReconnect(code) });
  }

  private send(command: Record<string, unknown>): void {
    if (this.socket && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify(command));
    }
  }
}

/** Why a WebSocket closed before it connected; a refusal's reason is its error code. */
function openError(where: string, code: number, reason: string): LiveHubError {
  const refusal = /^[a-z_]+$/.test(reason) ? reason : "";
  switch (code) {
    case 4003:
      return new LiveHubError("token_expired", `WebSocket to ${where} refused: token_expired`, code);
    case 4029:
      return new LiveHubError(refusal || "too_many_connections", `WebSocket to ${where} refused: ${refusal || "too many connections"}`, code);
    case 1008:
      return new LiveHubError(refusal || "forbidden", `WebSocket to ${where} refused: ${refusal || "policy violation"}`, code);
    default:
      return new LiveHubError("transport_failed", `WebSocket to ${where} closed (${code})`, code);
  }
}

function parse(data: unknown): Record<string, unknown> | null {
  if (typeof data !== "string") {
    // The `ws` package hands over Buffers for text frames unless told otherwise.
    if (data && typeof (data as { toString?: unknown }).toString === "function") {
      data = String(data);
    } else {
      return null;
    }
  }
  try {
    const value = JSON.parse(data as string) as unknown;
    return value && typeof value === "object" ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
