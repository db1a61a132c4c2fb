/**
 * What the dashboard needs from a connection, whichever family carries it: the LiveHub client
 * (WebSocket, SSE, long polling, polling) fits as it is, and `RemoteHub` adapts SignalR and MQTT
 * to the same shape. The pages never see which one is in use.
 */

import { ALL_TRANSPORTS, type ConnectionState, type LiveHubError, type SubscribeOptions, type Subscription, type TransportName } from "../../../clients/js/src/index.js";

/** The transports the dashboard reaches through another family's official client. */
export type RemoteTransport = "signalr-websockets" | "signalr-websockets-msgpack" | "signalr-sse" | "signalr-long-polling" | "mqtt";
export const REMOTE_TRANSPORTS: readonly RemoteTransport[] = ["signalr-websockets", "signalr-websockets-msgpack", "signalr-sse", "signalr-long-polling", "mqtt"];

/** Every transport the dashboard can run on; the name is what the indicator shows. */
export type DashTransport = TransportName | RemoteTransport;

/** What the transport selector offers: the LiveHub client's transports in order, or one pinned. */
export type Mode = "auto" | DashTransport;
export const MODES: readonly Mode[] = ["auto", ...ALL_TRANSPORTS, ...REMOTE_TRANSPORTS];

/** The transports' names as people read them, grouped by family as in the selector. */
export const TRANSPORT_TEXT: Record<DashTransport, string> = {
  websocket: "WebSocket",
  sse: "Server-Sent Events",
  "long-polling": "Long polling",
  polling: "Polling",
  "signalr-websockets": "SignalR · WebSockets",
  "signalr-websockets-msgpack": "SignalR · WebSockets · MessagePack",
  "signalr-sse": "SignalR · Server-Sent Events",
  "signalr-long-polling": "SignalR · Long Polling",
  mqtt: "MQTT · WebSocket",
};

export function isRemote(mode: Mode): mode is RemoteTransport {
  return (REMOTE_TRANSPORTS as readonly string[]).includes(mode);
}

/** Payload of the `state` event. */
export interface HubStateChange {
  state: ConnectionState;
  transport: DashTransport | null;
}

/** Payload of the `status` event and the `status` property: what the indicator and the stale marks show. */
export interface HubStatusView {
  state: ConnectionState;
  transport: DashTransport | null;
  /** When the next connection attempt is due (Unix milliseconds), while waiting for it. */
  retryAt: number | null;
  /** Since when the subscriptions' data may be out of date (Unix milliseconds), while not connected. */
  staleSince: number | null;
  /** Failed connection rounds in a row. */
  attempt: number;
}

/** Payload of the `fallback` event: the pinned transport is disabled on the server. */
export interface HubFallback {
  from: DashTransport;
  reason: string;
  code: string;
}

/** The events of a hub that the dashboard listens to. */
export interface HubEventMap {
  state: HubStateChange;
  status: HubStatusView;
  error: LiveHubError;
  circuit: { open: boolean };
  fallback: HubFallback;
}

/** A connection as the dashboard uses it. `LiveHub` is one as it is; `RemoteHub` is the other. */
export interface Hub {
  readonly status: HubStatusView;
  on<K extends keyof HubEventMap>(event: K, f: (payload: HubEventMap[K]) => void): () => void;
  /** Listens to an exact channel; the subscription's events are those of the LiveHub client. */
  subscribe(channel: string, options?: SubscribeOptions): Subscription;
  connect(): void;
  close(): void;
  /** Ends the wait before the next connection attempt. */
  retryNow(): void;
}
