/** Weather station cards (`weather/station/{id}`) and the alerts list (`weather/alerts`). */

import type { Message } from "../../../clients/js/src/index.js";
import { logActivity, type ActivityLevel } from "../activity.js";
import type { StationInfo } from "../catalog.js";
import type { Connection } from "../connection.js";
import { h, setText, svg } from "../dom.js";
import { isFiniteNumber, num, time } from "../format.js";
import { fetchHistory } from "../history.js";

/** Alerts the list keeps (and loads from history). */
const MAX_ALERTS = 50;

interface Reading {
  station: string;
  ts: number;
  temperature_c?: number;
  humidity_pct?: number;
  pressure_hpa?: number;
  wind_kmh?: number;
  wind_dir?: number;
  conditions?: string;
}

interface Alert {
  id?: string;
  station?: string;
  ts: number;
  severity?: string;
  title?: string;
  message?: string;
}

function hasTs(data: unknown): data is { ts: number } {
  return data !== null && typeof data === "object" && isFiniteNumber((data as { ts?: unknown }).ts);
}

/** A small icon for the conditions text; unknown conditions get a thermometer-free blank cloud. */
function conditionsIcon(conditions: string): SVGSVGElement {
  const c = conditions.toLowerCase();
  const parts: SVGElement[] = [];
  const cloud = () => svg("path", { d: "M8 26h17a6 6 0 0 0 0-12 8 8 0 0 0-15.3 2.2A5 5 0 0 0 8 26z", class: "cloud" });
  if (/clear|sun/.test(c)) {
    parts.push(svg("circle", { cx: 18, cy: 18, r: 7, class: "sun" }));
    for (let i = 0; i < 8; i++) {
      const a = (i * Math.PI) / 4;
      parts.push(svg("line", { x1: 18 + Math.cos(a) * 10, y1: 18 + Math.sin(a) * 10, x2: 18 + Math.cos(a) * 13, y2: 18 + Math.sin(a) * 13, class: "ray" }));
    }
  } else {
    if (/partly|few/.test(c)) {
      parts.push(svg("circle", { cx: 23, cy: 11, r: 6, class: "sun" }));
    }
    parts.push(cloud());
    if (/rain|shower|drizzle/.test(c)) {
      parts.push(svg("path", { d: "M12 29l-2 4M18 29l-2 4M24 29l-2 4", class: "rain" }));
    } else if (/storm|thunder/.test(c)) {
      parts.push(svg("path", { d: "M19 27l-4 5h5l-3 4", class: "bolt" }));
    } else if (/snow/.test(c)) {
      parts.push(svg("path", { d: "M12 30h.1M18 32h.1M24 30h.1", class: "snow" }));
    } else if (/fog|mist|haze/.test(c)) {
      parts.push(svg("path", { d: "M7 30h22M10 34h16", class: "fog" }));
    }
  }
  return svg("svg", { viewBox: "0 0 36 36", class: "wx-icon", "aria-hidden": "true" }, ...parts);
}

class StationCard {
  readonly el: HTMLElement;
  private readonly temp = h("div", { class: "value" }, "–");
  private readonly conditions = h("span", { class: "conditions" }, "–");
  private readonly icon = h("span", { class: "icon" });
  private readonly humidity = h("dd", {}, "–");
  private readonly pressure = h("dd", {}, "–");
  private readonly wind = h("dd", {}, "–");
  private readonly windArrow = svg("path", { d: "M6 1 L10 11 L6 8.5 L2 11 Z", class: "wind-arrow" });
  private readonly updated = h("time", { class: "muted" }, "");
  private lastConditions = "";
  reading: Reading | null = null;
  private stale = false;

  constructor(readonly info: StationInfo) {
    this.el = h(
      "article",
      { class: "card station", "data-station": info.id },
      h("h3", {}, info.name, " ", this.updated),
      h("div", { class: "station-main" }, this.icon, h("div", {}, this.temp, this.conditions)),
      h(
        "dl",
        {},
        h("dt", {}, "Humidity"),
        this.humidity,
        h("dt", {}, "Pressure"),
        this.pressure,
        h("dt", {}, "Wind"),
        h("dd", {}, svg("svg", { viewBox: "0 0 12 12", class: "wind-dir", "aria-hidden": "true" }, this.windArrow), this.wind),
      ),
    );
  }

  apply(r: Reading, active: boolean): void {
    if (this.reading && r.ts <= this.reading.ts) {
      return;
    }
    this.reading = r;
    this.stale = true;
    if (active) {
      this.render();
    }
  }

  render(): void {
    const r = this.reading;
    if (!r || !this.stale) {
      return;
    }
    this.stale = false;
    this.el.dataset.updated = String(r.ts);
    setText(this.temp, isFiniteNumber(r.temperature_c) ? `${num(r.temperature_c, 1)} °C` : "–");
    const conditions = r.conditions ?? "";
    setText(this.conditions, conditions || "–");
    if (conditions !== this.lastConditions) {
      this.lastConditions = conditions;
      this.icon.replaceChildren(conditionsIcon(conditions));
    }
    setText(this.humidity, isFiniteNumber(r.humidity_pct) ? `${num(r.humidity_pct, 0)} %` : "–");
    setText(this.pressure, isFiniteNumber(r.pressure_hpa) ? `${num(r.pressure_hpa, 1)} hPa` : "–");
    setText(this.wind, isFiniteNumber(r.wind_kmh) ? `${num(r.wind_kmh, 0)} km/h` : "–");
    // wind_dir is where the wind comes from; the arrow shows where it blows.
    this.windArrow.setAttribute("transform", `rotate(${((r.wind_dir ?? 0) + 180) % 360} 6 6)`);
    setText(this.updated, time(r.ts));
  }
}

/** The station cards and the alerts list, each kept current by its own subscription. */
export class Weather {
  readonly stationsEl = h("div", { class: "cards stations" });
  readonly alertsEl = h("ul", { id: "alerts", class: "alerts" });
  private readonly cards: StationCard[];
  private readonly alertIds = new Set<string>();
  private active = false;

  constructor(
    conn: Connection,
    stations: StationInfo[],
    private readonly alertsChannel: string,
  ) {
    this.cards = stations.map((s) => new StationCard(s));
    this.stationsEl.append(...this.cards.map((c) => c.el));
    for (const card of this.cards) {
      conn.subscribe(card.info.channel, { latest: true }, {
        message: (m: Message) => {
          if (hasTs(m.data)) {
            card.apply(m.data as Reading, this.active);
          }
        },
      });
    }
    this.alertsEl.append(h("li", { class: "empty" }, "No alerts so far."));
    conn.subscribe(alertsChannel, {}, {
      message: (m: Message) => {
        if (hasTs(m.data)) {
          this.addAlert(m.data as Alert, true);
        }
      },
      unrecovered: () => void this.loadAlerts(),
    });
    void this.loadAlerts();
  }

  setActive(active: boolean): void {
    this.active = active;
    if (active) {
      for (const card of this.cards) {
        card.render();
      }
    }
  }

  /** Fills the list from history: alerts raised before the page opened. */
  async loadAlerts(): Promise<void> {
    const alerts = (await fetchHistory(this.alertsChannel, MAX_ALERTS)).map((p) => p.data).filter(hasTs) as Alert[];
    for (const alert of alerts) {
      this.addAlert(alert, false);
    }
  }

  private addAlert(alert: Alert, live: boolean): void {
    const key = alert.id ?? `${alert.station ?? ""}-${alert.ts}`;
    if (this.alertIds.has(key)) {
      return;
    }
    this.alertIds.add(key);
    const severity = ["info", "warning", "danger"].includes(alert.severity ?? "") ? alert.severity! : "info";
    const station = this.cards.find((c) => c.info.id === alert.station)?.info.name ?? alert.station ?? "";
    const item = h(
      "li",
      { "data-severity": severity, "data-ts": alert.ts },
      h("span", { class: `sev ${severity}` }, severity),
      h("div", {}, h("strong", {}, alert.title ?? "Alert"), station ? h("span", { class: "muted" }, ` · ${station}`) : null, h("p", {}, alert.message ?? "")),
      h("time", { class: "muted" }, time(alert.ts)),
    );
    this.alertsEl.querySelector(".empty")?.remove();
    // Newest first, even when history arrives after a live alert.
    const after = [...this.alertsEl.children].find((li) => Number((li as HTMLElement).dataset.ts) < alert.ts);
    this.alertsEl.insertBefore(item, after ?? null);
    while (this.alertsEl.childElementCount > MAX_ALERTS) {
      this.alertsEl.lastElementChild?.remove();
    }
    if (live) {
      const level: ActivityLevel = severity === "danger" ? "danger" : severity === "warning" ? "warning" : "info";
      logActivity("alert", `${alert.title ?? "Alert"}${station ? ` at ${station}` : ""}`, level, alert.ts);
    }
  }
}
