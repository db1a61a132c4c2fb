/**
 * The seam between `RemoteHub` and a family's client: a `Link` is one open connection. The
 * SignalR and MQTT modules implement it and import nothing else from the dashboard at run time
 * but `linkError`, so that code splitting leaves every module of the main bundle in `app.js`.
 */

import type { Message, Position } from "../../../clients/js/src/index.js";

/** What a link reports to its hub. */
export interface LinkEvents {
  /** A publication, live or replayed by a recovery. */
  message(m: Message): void;
  /** The connection ended; `error` (a `linkError`) says why when it failed. Called once, and never after `close()`. */
  closed(error: Error | null): void;
}

/** A subscription's answer: where the channel stands, and whether what was missed since `since` was delivered. */
export interface LinkSubscribed {
  position?: Position;
  recovered: boolean;
}

/** One open connection of a family's client. */
export interface Link {
  /** Subscribes `channel`, recovering from `since` where the family can; rejects with a `linkError`. */
  subscribe(channel: string, since: Position | undefined): Promise<LinkSubscribed>;
  unsubscribe(channel: string): Promise<void>;
  /** The channel's newest publication, for subscriptions that ask for `latest`. */
  latest(channel: string): Promise<Message | null>;
  close(): void;
}

/**
 * Opens a link; rejects with a `linkError` (`unauthorized`, `transport_disabled`,
 * `transport_failed`, …).
 */
export type LinkOpener = (events: LinkEvents) => Promise<Link>;

/**
 * A failure of a link, with one of the codes of `LiveHubError`. A plain `Error`, not the client's
 * `LiveHubError`, which would pull the client into a chunk shared with `app.js`; `RemoteHub`
 * turns it into one.
 */
export function linkError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

