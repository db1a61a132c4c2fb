/** Transit: simulated vehicles on `transit/route/{id}`, drawn on a map of the catalog's routes. */

import type { Message } from "../../../clients/js/src/index.js";
import { unavailable, type RouteInfo } from "../catalog.js";
import { h, note, simulatedBadge, tableWrap } from "../dom.js";
import { isFiniteNumber, label, lateness, num } from "../format.js";
import { fetchHistory } from "../history.js";
import { isStringArray, load, save } from "../prefs.js";
import type { Page, PageContext } from "./page.js";
import { STATUS_COLORS, TransitMap, type Vehicle } from "./transit-map.js";

interface Snapshot {
  route: string;
  ts: number;
  vehicles: Vehicle[];
}

function isSnapshot(data: unknown): data is Snapshot {
  const s = data as Partial<Snapshot> | null;
  return s !== null && typeof s === "object" && typeof s.route === "string" && isFiniteNumber(s.ts) && Array.isArray(s.vehicles);
}

function isVehicle(v: unknown): v is Vehicle {
  const x = v as Partial<Vehicle> | null;
  return x !== null && typeof x === "object" && typeof x.id === "string" && isFiniteNumber(x.lat) && isFiniteNumber(x.lon);
}

export function transitPage({ conn, catalog, root }: PageContext): Page {
  let active = false;
  let map: TransitMap | null = null;
  let routes: RouteInfo[] = [];
  /** The newest snapshot per followed route, and whether the screen shows it yet. */
  const snapshots = new Map<string, Snapshot>();
  const drawn = new Set<string>();
  const followed = new Map<string, () => void>();
  const list = h("tbody");

  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h2", {}, "Transit ", simulatedBadge()),
      h("p", { class: "muted" }, "Vehicles of a made-up city, one snapshot a second per route. Each route you pick is one subscription to transit/route/{id}."),
    ),
  );
  const content = h("div", { class: "loading" }, "Loading the routes…");
  root.append(content);

  function apply(snapshot: Snapshot): void {
    const current = snapshots.get(snapshot.route);
    if (current && snapshot.ts < current.ts) {
      return;
    }
    if (!followed.has(snapshot.route)) {
      return;
    }
    snapshots.set(snapshot.route, { ...snapshot, vehicles: snapshot.vehicles.filter(isVehicle) });
    drawn.delete(snapshot.route);
    if (active) {
      draw();
    }
  }

  function draw(): void {
    if (!map) {
      return;
    }
    for (const [id, snapshot] of snapshots) {
      if (!drawn.has(id)) {
        map.update(id, snapshot.vehicles);
        drawn.add(id);
      }
    }
    drawList();
  }

  function drawList(): void {
    const rows = routes.flatMap((route) =>
      (snapshots.get(route.id)?.vehicles ?? []).map((v) => {
        const status = v.status ?? "on_route";
        const delay = v.delay_secs ?? 0;
        return h(
          "tr",
          { "data-vehicle-row": v.id, "data-status": status },
          h("th", { scope: "row" }, h("i", { class: "swatch", style: `background:${route.color}` }), v.id),
          h("td", {}, h("span", { class: `status ${status}` }, label(status))),
          h("td", { class: "num" }, `${num(v.speed_kmh, 0)} km/h`),
          h("td", {}, v.next_stop ?? "–"),
          h("td", { class: "num" }, lateness(delay)),
        );
      }),
    );
    list.replaceChildren(...(rows.length ? rows : [h("tr", { class: "empty" }, h("td", { colspan: 5 }, "No vehicles: pick a route."))]));
  }

  function follow(route: RouteInfo): void {
    if (followed.has(route.id)) {
      return;
    }
    map?.setRouteShown(route.id, true);
    const off = conn.subscribe(route.channel, { latest: true }, {
      message: (m: Message) => {
        if (isSnapshot(m.data)) {
          apply(m.data);
        }
      },
      unrecovered: () => void refill(route),
    });
    followed.set(route.id, off);
  }

  function unfollow(route: RouteInfo): void {
    followed.get(route.id)?.();
    followed.delete(route.id);
    snapshots.delete(route.id);
    drawn.delete(route.id);
    map?.setRouteShown(route.id, false);
    map?.clear(route.id);
    drawList();
  }

  async function refill(route: RouteInfo): Promise<void> {
    const latest = (await fetchHistory(route.channel, 1)).map((p) => p.data).filter(isSnapshot);
    if (latest[0]) {
      apply(latest[0]);
    }
  }

  void catalog.then((cat) => {
    const problem = unavailable(cat, cat?.transit, "transit");
    routes = (cat?.transit?.routes ?? []).filter((r) => r && typeof r.id === "string");
    if (problem || routes.length === 0) {
      content.replaceWith(note(problem?.title ?? "No routes", problem?.text ?? "The transit source lists no routes."));
      return;
    }
    map = new TransitMap(routes);
    const ids = routes.map((r) => r.id);
    const picked = new Set(load<string[]>("routes", ids, isStringArray).filter((id) => ids.includes(id)));
    const pickers = h("div", { class: "chips", role: "group", "aria-label": "Routes" });
    for (const route of routes) {
      const box = h("input", { type: "checkbox", "data-route": route.id, checked: picked.has(route.id) });
      box.addEventListener("change", () => {
        if (box.checked) {
          follow(route);
        } else {
          unfollow(route);
        }
        save("routes", ids.filter((id) => followed.has(id)));
      });
      pickers.append(h("label", { class: "chip", title: route.name }, box, h("i", { class: "swatch", style: `background:${route.color}` }), h("span", {}, `${route.id} ${route.name}`)));
    }
    const legend = h(
      "div",
      { class: "legend map-legend" },
      ...Object.entries(STATUS_COLORS).map(([status, color]) => h("span", { class: "key" }, h("i", { style: `background:${color}` }), label(status))),
      h("span", { class: "key" }, h("i", { class: "stop-key" }), "stop"),
    );
    const table = h(
      "table",
      { class: "vehicles-table" },
      h("thead", {}, h("tr", {}, ...["Vehicle", "Status", "Speed", "Next stop", "Delay"].map((t) => h("th", { scope: "col" }, t)))),
      list,
    );
    content.replaceWith(
      h(
        "div",
        { class: "transit-grid" },
        h("div", { class: "panel map-panel" }, pickers, h("div", { class: "map-wrap" }, map.el), legend),
        h("aside", { class: "panel" }, h("h3", {}, "Vehicles"), tableWrap(table)),
      ),
    );
    for (const route of routes) {
      if (picked.has(route.id)) {
        follow(route);
      } else {
        map.setRouteShown(route.id, false);
      }
    }
    drawList();
  });

  return {
    id: "transit",
    show() {
      active = true;
      draw();
    },
    hide() {
      active = false;
    },
    resync() {
      for (const route of routes) {
        if (followed.has(route.id)) {
          void refill(route);
        }
      }
    },
  };
}
