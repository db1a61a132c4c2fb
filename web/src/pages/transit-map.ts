/** The SVG map of the transit page: routes from the catalog geometry, stops, and vehicles as arrows. */

import type { RouteInfo } from "../catalog.js";
import { svg } from "../dom.js";
import { label, num } from "../format.js";

export interface Vehicle {
  id: string;
  lat: number;
  lon: number;
  heading?: number;
  speed_kmh?: number;
  status?: string;
  next_stop?: string;
  delay_secs?: number;
}

export const STATUS_COLORS: Record<string, string> = {
  on_route: "#34d399",
  delayed: "#fbbf24",
  out_of_service: "#f87171",
};

/** Width of the drawing in SVG units; the height follows the routes' aspect. */
const WIDTH = 1000;
const MARGIN = 40;

/** Equirectangular projection of the routes' bounding box into the SVG box (fine at city scale). */
class Projection {
  readonly height: number;
  private readonly minLon: number;
  private readonly maxLat: number;
  private readonly kx: number;
  private readonly scale: number;

  constructor(points: [number, number][]) {
    const lats = points.map((p) => p[0]);
    const lons = points.map((p) => p[1]);
    const [minLat, maxLat] = points.length ? [Math.min(...lats), Math.max(...lats)] : [0, 1];
    const [minLon, maxLon] = points.length ? [Math.min(...lons), Math.max(...lons)] : [0, 1];
    this.minLon = minLon;
    this.maxLat = maxLat;
    // A degree of longitude shrinks with the cosine of the latitude.
    this.kx = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
    const w = Math.max((maxLon - minLon) * this.kx, 1e-6);
    const hgt = Math.max(maxLat - minLat, 1e-6);
    this.scale = (WIDTH - 2 * MARGIN) / w;
    this.height = Math.min(Math.max(hgt * this.scale + 2 * MARGIN, 320), 900);
    // A tall city would not fit in the height cap: shrink to fit it instead.
    if (hgt * this.scale + 2 * MARGIN > this.height) {
      this.scale = (this.height - 2 * MARGIN) / hgt;
    }
    const usedH = hgt * this.scale;
    const usedW = w * this.scale;
    this.offsetX = (WIDTH - usedW) / 2;
    this.offsetY = (this.height - usedH) / 2;
  }

  private readonly offsetX: number;
  private readonly offsetY: number;

  x(lon: number): number {
    return this.offsetX + (lon - this.minLon) * this.kx * this.scale;
  }

  y(lat: number): number {
    return this.offsetY + (this.maxLat - lat) * this.scale;
  }
}

interface VehicleMark {
  el: SVGGElement;
  arrow: SVGGElement;
  title: SVGTitleElement;
  angle: number;
}

export class TransitMap {
  readonly el: SVGSVGElement;
  private readonly projection: Projection;
  private readonly lines = new Map<string, SVGGElement>();
  private readonly vehicleLayer: SVGGElement;
  private readonly marks = new Map<string, VehicleMark>();

  constructor(private readonly routes: RouteInfo[]) {
    const points = routes.flatMap((r) => [...(r.path ?? []), ...(r.stops ?? []).map((s): [number, number] => [s.lat, s.lon])]);
    this.projection = new Projection(points);
    const p = this.projection;
    const height = Math.round(p.height);
    this.vehicleLayer = svg("g", { class: "vehicles" });
    this.el = svg(
      "svg",
      { id: "transit-map", viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": "Map of the transit routes and their vehicles" },
      svg("defs", {}, svg("pattern", { id: "transit-grid", width: 50, height: 50, patternUnits: "userSpaceOnUse" }, svg("path", { d: "M50 0H0V50", class: "grid-line" }))),
      svg("rect", { width: WIDTH, height, class: "map-bg" }),
      svg("rect", { width: WIDTH, height, fill: "url(#transit-grid)" }),
    );
    for (const route of routes) {
      const d = (route.path ?? []).map(([lat, lon]) => `${p.x(lon).toFixed(1)},${p.y(lat).toFixed(1)}`).join(" ");
      const group = svg(
        "g",
        { class: "route", "data-route-line": route.id },
        svg("polyline", { points: d, class: "casing" }),
        svg("polyline", { points: d, class: "line", stroke: route.color }),
        ...(route.stops ?? []).map((s) =>
          svg("circle", { cx: p.x(s.lon).toFixed(1), cy: p.y(s.lat).toFixed(1), r: 5, class: "stop", stroke: route.color }, svg("title", {}, `${s.name} (${route.name})`)),
        ),
      );
      this.lines.set(route.id, group);
      this.el.append(group);
    }
    this.el.append(this.vehicleLayer);
  }

  /** Dims a route that is not followed. */
  setRouteShown(id: string, shown: boolean): void {
    this.lines.get(id)?.classList.toggle("off", !shown);
  }

  /** Draws a route's vehicles, removing those of that route no longer listed. */
  update(routeId: string, vehicles: Vehicle[]): void {
    const route = this.routes.find((r) => r.id === routeId);
    const seen = new Set<string>();
    for (const v of vehicles) {
      seen.add(v.id);
      let mark = this.marks.get(v.id);
      if (!mark) {
        mark = this.mark(v.id, routeId, route?.color ?? "#e5e7eb");
        // Glide only from the second position on: a new arrow must not fly in from the corner.
        const el = mark.el;
        requestAnimationFrame(() => el.classList.add("moving"));
      }
      const status = v.status ?? "on_route";
      mark.el.dataset.status = status;
      mark.el.style.setProperty("--status", STATUS_COLORS[status] ?? "#e5e7eb");
      mark.el.style.transform = `translate(${this.projection.x(v.lon).toFixed(1)}px, ${this.projection.y(v.lat).toFixed(1)}px)`;
      // Turn the short way round: 350° → 10° is +20°, not −340°.
      const heading = v.heading ?? 0;
      const delta = ((((heading - mark.angle) % 360) + 540) % 360) - 180;
      mark.angle += delta;
      mark.arrow.style.transform = `rotate(${mark.angle.toFixed(1)}deg)`;
      mark.title.textContent = `${v.id}: ${label(status)}, ${num(v.speed_kmh, 0)} km/h${v.next_stop ? `, next ${v.next_stop}` : ""}`;
    }
    for (const [id, mark] of this.marks) {
      if (mark.el.dataset.routeId === routeId && !seen.has(id)) {
        mark.el.remove();
        this.marks.delete(id);
      }
    }
  }

  /** Removes a route's vehicles (it was unpicked). */
  clear(routeId: string): void {
    this.update(routeId, []);
  }

  private mark(id: string, routeId: string, color: string): VehicleMark {
    const title = svg("title");
    const arrow = svg("g", { class: "arrow" }, svg("path", { d: "M0,-12 L8,9 L0,4.5 L-8,9 Z", stroke: color }));
    const el = svg("g", { class: "vehicle", "data-vehicle": id, "data-route-id": routeId }, title, svg("circle", { r: 15, class: "halo" }), arrow);
    this.vehicleLayer.append(el);
    const mark = { el, arrow, title, angle: 0 };
    this.marks.set(id, mark);
    return mark;
  }
}
