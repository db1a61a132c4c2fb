/**
 * SignalR links: the official `@microsoft/signalr` client against the server's hub at
 * `/hubs/live` (docs/signalr.md), over one pinned transport, with the JSON hub protocol or
 * MessagePack. Loaded only when a SignalR transport is picked.
 */

import { HttpTransportType, HubConnectionBuilder, LogLevel, type HubConnection, type IHubProtocol } from "@microsoft/signalr";
import type { Message, Position } from "../../../clients/js/src/index.js";
import { linkError, type Link, type LinkOpener, type LinkSubscribed } from "./link.js";

/** The hub's path: `[signalr] path`'s default. */
export const SIGNALR_PATH = "/hubs/live";
/** The client method publications invoke: `[signalr] default_target`'s default. */
const RECEIVE = "Receive";

export type SignalRKind = "websockets" | "sse" | "long-polling";

const TRANSPORTS: Record<SignalRKind, HttpTransportType> = {
  websockets: HttpTransportType.WebSockets,
  sse: HttpTransportType.ServerSentEvents,
  "long-polling": HttpTransportType.LongPolling,
};

export interface SignalROptions {
  /** The server's origin. */
  baseUrl: string;
  transport: SignalRKind;
  /** MessagePack instead of JSON (WebSockets and long polling only). */
  messagePack?: boolean;
  token?: string;
}

/** A publication as the hub sends it (`Receive(channel, message)`). */
interface WireMessage {
  channel: string;
  data: unknown;
  offset: number;
  epoch: string;
  time: number;
}

/** Per channel, the answer of `Subscribe`. */
type SubscribeAnswer = Record<string, { position?: Position; recovered?: boolean } | undefined>;

export function signalrLink(options: SignalROptions): LinkOpener {
  return async (events) => {
    const protocol: IHubProtocol | null = options.messagePack ? (await import("./signalr-msgpack.js")).messagePack() : null;
    let builder = new HubConnectionBuilder()
      .withUrl(`${options.baseUrl}${SIGNALR_PATH}`, {
        transport: TRANSPORTS[options.transport],
        ...(options.token ? { accessTokenFactory: () => options.token ?? "" } : {}),
      })
      // Failures reach the activity feed as the hub's errors; the console stays quiet.
      .configureLogging(LogLevel.None);
    if (protocol) {
      builder = builder.withHubProtocol(protocol);
    }
    const connection = builder.build();
    let open = true;
    connection.on(RECEIVE, (_channel: string, m: WireMessage) => events.message(toMessage(m)));
    connection.onclose((error) => {
      if (open) {
        open = false;
        events.closed(error ? linkError("disconnected", error.message) : null);
      }
    });
    try {
      await connection.start();
    } catch (err) {
      open = false;
      void connection.stop();
      throw startError(err);
    }
    return new SignalRLink(connection, () => {
      open = false;
    });
  };
}

class SignalRLink implements Link {
  constructor(
    private readonly connection: HubConnection,
    private readonly closing: () => void,
  ) {}

  async subscribe(channel: string, since: Position | undefined): Promise<LinkSubscribed> {
    const answer = await this.call<SubscribeAnswer>("Subscribe", [channel], since ? { [channel]: since } : null);
    const entry = answer[channel];
    return { ...(entry?.position ? { position: entry.position } : {}), recovered: entry?.recovered === true };
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.call("Unsubscribe", [channel]);
  }

  async latest(channel: string): Promise<Message | null> {
    const answer = await this.call<{ publications?: WireMessage[] }>("History", channel, null, 1);
    const newest = answer.publications?.at(-1);
    return newest ? toMessage(newest) : null;
  }

  close(): void {
    this.closing();
    void this.connection.stop();
  }

  /** Invokes a hub method; a failure is a `LiveHubError` with the server's code. */
  private async call<T>(method: string, ...args: unknown[]): Promise<T> {
    try {
      return (await this.connection.invoke(method, ...args)) as T;
    } catch (err) {
      // The hub's errors read `<code>: [<channel>: ]<message>` (docs/signalr.md).
      const text = err instanceof Error ? err.message : String(err);
      const coded = /^([a-z_]+): (.*)$/s.exec(text);
      throw coded ? linkError(coded[1] ?? "error", coded[2] ?? text) : linkError("disconnected", text);
    }
  }
}

function toMessage(m: WireMessage): Message {
  return { channel: m.channel, data: m.data, offset: Number(m.offset), epoch: String(m.epoch), ts: Number(m.time) };
}

/**
 * Why `start()` failed, with the server's code where it gave one: the client puts the body of a
 * refused negotiate (livehub's JSON error) and its status into the message.
 */
function startError(err: unknown): Error {
  const text = err instanceof Error ? err.message : String(err);
  const code = /"code"\s*:\s*"([a-z_]+)"/.exec(text)?.[1];
  const message = /"message"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(text)?.[1];
  if (code) {
    return linkError(code, message ?? text);
  }
  const status = Number(/Status code '(\d+)'/.exec(text)?.[1]);
  if (status === 401) {
    return linkError("unauthorized", text);
  }
  if (status === 403) {
    return linkError("forbidden", text);
  }
  return linkError("transport_failed", text);
}
