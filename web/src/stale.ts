/**
 * What the page shows while its data is not live: every view dimmed and labelled "stale since
 * hh:mm:ss" from the moment the connection is lost until the hub is connected again, the real
 * countdown to the next attempt in the indicator, and a "Retry now" button.
 */

import type { HubStatusView } from "./transports/hub.js";
import { byId, setText } from "./dom.js";
import { time } from "./format.js";

/**
 * The views that show live data. The activity feed is left out on purpose: it says what is
 * happening, which is never stale.
 */
const VIEWS = "[data-card], [data-chart], [data-station], .panel:not(.activity-panel)";

/** How often the countdown and the marks are refreshed while waiting. */
const TICK_MS = 250;

const STATE_TEXT: Record<HubStatusView["state"], string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected",
};

export class StaleView {
  private readonly stateEl = byId("conn-state");
  private readonly retryButton = byId<HTMLButtonElement>("retry-now");
  private readonly sinceEl = byId("stale-since");
  private status: HubStatusView | null = null;
  private ticker: ReturnType<typeof setInterval> | null = null;

  constructor(retry: () => void) {
    this.retryButton.addEventListener("click", () => {
      setText(this.stateEl, "Reconnecting now…");
      retry();
    });
  }

  /** Shows `status`; called on every `status` event of the current hub. */
  update(status: HubStatusView): void {
    this.status = status;
    this.render();
    const waiting = status.retryAt !== null || status.staleSince !== null;
    if (waiting && !this.ticker) {
      this.ticker = setInterval(() => this.render(), TICK_MS);
    } else if (!waiting && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  private render(): void {
    const status = this.status;
    if (!status) {
      return;
    }
    let text = STATE_TEXT[status.state];
    if (status.state === "reconnecting" && status.retryAt !== null) {
      const secs = Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000));
      text = secs > 0 ? `Reconnecting in ${secs} s…` : "Reconnecting…";
    }
    this.stateEl.dataset.state = status.state;
    setText(this.stateEl, text);
    // Retrying makes sense while waiting for the next attempt, not while one is under way.
    this.retryButton.hidden = status.state !== "reconnecting" || status.retryAt === null;
    this.mark(status.staleSince);
  }

  /** Marks every view stale since `since`, or clears the marks when it is `null`. */
  private mark(since: number | null): void {
    const label = since === null ? null : time(since);
    document.body.toggleAttribute("data-stale", label !== null);
    this.sinceEl.hidden = label === null;
    setText(this.sinceEl, label === null ? "" : `Stale since ${label}`);
    for (const el of document.querySelectorAll<HTMLElement>(VIEWS)) {
      // A view inside another is dimmed with it; marking both would dim it twice.
      const outer = el.parentElement?.closest(VIEWS) ?? null;
      if (label !== null && outer === null) {
        if (el.dataset.staleSince !== label) {
          el.dataset.staleSince = label;
        }
      } else if (el.dataset.staleSince !== undefined) {
        delete el.dataset.staleSince;
      }
    }
  }
}
