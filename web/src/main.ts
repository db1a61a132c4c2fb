/**
 * The livehub dashboard: boot, hash routing between the four pages, and pausing while the tab is
 * hidden. Pages collect data all the time; only the current one draws.
 */

import { fetchCatalog } from "./catalog.js";
import { Connection, type Mode } from "./connection.js";
import { byId } from "./dom.js";
import { marketsPage } from "./pages/markets.js";
import { overviewPage } from "./pages/overview.js";
import type { Page, PageContext, PageId } from "./pages/page.js";
import { sensorsPage } from "./pages/sensors.js";
import { transitPage } from "./pages/transit.js";
import { initTheme } from "./theme.js";
import type { Hub } from "./transports/hub.js";

/** After this long hidden, the charts are refilled from history when the tab shows again. */
const RESYNC_AFTER_HIDDEN_MS = 10_000;

const PAGES: Record<PageId, (ctx: PageContext) => Page> = {
  overview: overviewPage,
  markets: marketsPage,
  transit: transitPage,
  sensors: sensorsPage,
};

declare global {
  interface Window {
    /** A debug handle for tests and the console. */
    livehubDashboard: { hub(): Hub; transport(): Mode };
  }
}

function pageFromHash(): PageId {
  const name = location.hash.replace(/^#\/?/, "");
  return name in PAGES ? (name as PageId) : "overview";
}

function boot(): void {
  initTheme();
  const conn = new Connection();
  const catalog = fetchCatalog();
  const pages = (Object.keys(PAGES) as PageId[]).map((id) => PAGES[id]({ conn, catalog, root: byId(`page-${id}`) }));
  window.livehubDashboard = { hub: () => conn.hub, transport: () => conn.mode };

  let current: Page | null = null;
  const onScreen = () => document.visibilityState !== "hidden";

  function route(): void {
    const id = pageFromHash();
    for (const page of pages) {
      byId(`page-${page.id}`).hidden = page.id !== id;
    }
    for (const link of document.querySelectorAll<HTMLAnchorElement>("a[data-page]")) {
      if (link.dataset.page === id) {
        link.setAttribute("aria-current", "page");
      } else {
        link.removeAttribute("aria-current");
      }
    }
    const next = pages.find((p) => p.id === id) ?? null;
    if (next !== current) {
      current?.hide();
      current = next;
      if (onScreen()) {
        current?.show();
      }
    }
    document.title = `${id[0]!.toUpperCase()}${id.slice(1)} · livehub`;
  }

  let hiddenSince = 0;
  document.addEventListener("visibilitychange", () => {
    if (!onScreen()) {
      hiddenSince = performance.now();
      current?.hide();
      return;
    }
    if (hiddenSince && performance.now() - hiddenSince > RESYNC_AFTER_HIDDEN_MS) {
      for (const page of pages) {
        page.resync();
      }
    }
    hiddenSince = 0;
    current?.show();
  });

  conn.onResync(() => {
    for (const page of pages) {
      page.resync();
    }
  });

  window.addEventListener("hashchange", route);
  if (!location.hash) {
    history.replaceState(history.state, "", "#/overview");
  }
  route();
}

boot();
