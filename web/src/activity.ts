/** The activity feed: the last events of the connection and the sources, newest first. */

import { h } from "./dom.js";
import { time } from "./format.js";

/** How many entries the feed keeps. */
const MAX_ENTRIES = 60;

export type ActivityKind = "connection" | "transport" | "alert" | "data" | "error";
export type ActivityLevel = "ok" | "info" | "warning" | "danger";

/** The list element; the overview page places it, the whole app writes to it. */
export const activityList: HTMLUListElement = h("ul", { id: "activity", class: "activity", "aria-live": "polite" });

/** Adds an entry at the top of the feed. */
export function logActivity(kind: ActivityKind, text: string, level: ActivityLevel = "info", ts = Date.now()): void {
  const item = h(
    "li",
    { "data-kind": kind, "data-level": level },
    h("time", { datetime: new Date(ts).toISOString() }, time(ts)),
    h("span", { class: "kind" }, kind),
    h("span", { class: "text" }, text),
  );
  activityList.prepend(item);
  while (activityList.childElementCount > MAX_ENTRIES) {
    activityList.lastElementChild?.remove();
  }
}
