/**
 * The livehub client: one connection API over WebSocket, Server-Sent Events, long polling and
 * polling, with fallback, reconnection and recovery. See clients/js/README.md.
 */
export { LiveHub, type HubEvents } from "./hub.js";
export { Subscription, type SubscriptionEvents } from "./subscription.js";
export { LiveHubError } from "./errors.js";
export { tokenExpiry, type TokenFunction, type TokenSource } from "./token.js";
export { encodeCursor, matches } from "./cursor.js";
export * from "./types.js";
