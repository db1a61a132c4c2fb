import type { Catalog } from "../catalog.js";
import type { Connection } from "../connection.js";

export type PageId = "overview" | "markets" | "transit" | "sensors";

/** One of the four pages. It collects data all the time but draws only while shown. */
export interface Page {
  readonly id: PageId;
  /** The page is on screen (current and the tab visible): draw everything that changed. */
  show(): void;
  /** The page left the screen: stop drawing. */
  hide(): void;
  /** Refill from REST history (after a transport switch, or a long time hidden). */
  resync(): void;
}

export interface PageContext {
  conn: Connection;
  /** Resolves to `null` when `GET /api/sources` fails. */
  catalog: Promise<Catalog | null>;
  /** The page's `section`. */
  root: HTMLElement;
}
