/** The overview's metric cards, filled from one `metrics/system` payload. */

import { h, setText } from "../dom.js";
import { bytes, duration, isFiniteNumber, num, percent, rate } from "../format.js";

/** Above this percentage a meter turns red. */
export const HOT_PERCENT = 85;

/** The `metrics/system` payload (docs/sources.md); every field is checked before use. */
export interface SystemMetrics {
  ts: number;
  host?: string;
  cpu?: { total?: number; cores?: number[] };
  memory?: { total?: number; used?: number; available?: number; percent?: number };
  swap?: { total?: number; used?: number; percent?: number };
  load?: number[];
  uptime_secs?: number;
  processes?: number;
  disks?: { mount: string; fs?: string; total?: number; used?: number; percent?: number }[];
  disk_io?: { read_bps?: number; write_bps?: number };
  network?: { rx_bps?: number; tx_bps?: number; interfaces?: { name: string }[] };
  livehub?: {
    connections?: number;
    transports?: Record<string, number>;
    subscriptions?: number;
    publications_per_sec?: number;
    deliveries_per_sec?: number;
    memory_rss?: number;
    uptime_secs?: number;
  };
}

export type CardId = "cpu" | "memory" | "swap" | "load" | "network" | "disk" | "uptime" | "processes" | "livehub";

const TITLES: Record<CardId, string> = {
  cpu: "CPU",
  memory: "Memory",
  swap: "Swap",
  load: "Load average",
  network: "Network",
  disk: "Disk",
  uptime: "Uptime",
  processes: "Processes",
  livehub: "livehub",
};

interface Card {
  el: HTMLElement;
  value: HTMLElement;
  sub: HTMLElement;
  meter: HTMLElement | null;
}

/** The nine cards; `update` writes a payload into them. */
export class SystemCards {
  readonly el: HTMLElement;
  private readonly cards = new Map<CardId, Card>();

  constructor() {
    this.el = h("div", { class: "cards system-cards" });
    const withMeter: CardId[] = ["cpu", "memory", "swap", "load", "disk"];
    for (const id of Object.keys(TITLES) as CardId[]) {
      const value = h("div", { class: "value" }, "–");
      const sub = h("div", { class: "sub" });
      const meter = withMeter.includes(id) ? h("div", { class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100 }, h("span")) : null;
      const el = h("article", { class: "card", "data-card": id }, h("h3", {}, TITLES[id]), value, meter, sub);
      this.cards.set(id, { el, value, sub, meter });
    }
    this.el.append(...[...this.cards.values()].map((c) => c.el));
  }

  update(m: SystemMetrics): void {
    const cores = m.cpu?.cores?.length ?? 0;
    this.set("cpu", m.ts, percent(m.cpu?.total), cores ? `${cores} cores` : "", m.cpu?.total);

    const mem = m.memory;
    this.set("memory", m.ts, percent(mem?.percent), mem ? `${bytes(mem.used)} of ${bytes(mem.total)}` : "", mem?.percent);

    const swap = m.swap;
    const noSwap = !swap || !swap.total;
    this.set("swap", m.ts, noSwap ? "none" : percent(swap.percent), noSwap ? "no swap configured" : `${bytes(swap.used)} of ${bytes(swap.total)}`, noSwap ? 0 : swap.percent);
    // An empty meter reads as 0 % of something; there is nothing to measure.
    const swapMeter = this.cards.get("swap")?.meter;
    if (swapMeter) {
      swapMeter.hidden = noSwap;
    }

    const load = Array.isArray(m.load) ? m.load : [];
    const perCore = cores && isFiniteNumber(load[0]) ? load[0] / cores : undefined;
    this.set(
      "load",
      m.ts,
      num(load[0], 2),
      [`${num(load[1], 2)} · ${num(load[2], 2)} (5, 15 min)`, perCore !== undefined ? `${num(perCore * 100, 0)} % of ${cores} cores` : ""].join("\n"),
      perCore !== undefined ? perCore * 100 : undefined,
    );

    const net = m.network;
    const ifaces = net?.interfaces?.map((i) => i.name).join(", ") ?? "";
    this.set("network", m.ts, `↓ ${rate(net?.rx_bps)}\n↑ ${rate(net?.tx_bps)}`, ifaces || "no interfaces");

    const disks = Array.isArray(m.disks) ? m.disks : [];
    const root = disks.find((d) => d.mount === "/") ?? disks[0];
    const io = m.disk_io;
    const others = disks.filter((d) => d !== root).slice(0, 3).map((d) => `${d.mount} ${percent(d.percent, 0)}`);
    this.set(
      "disk",
      m.ts,
      root ? percent(root.percent) : "–",
      [root ? `${bytes(root.used)} of ${bytes(root.total)} (${root.mount})` : "no disks", `R ${rate(io?.read_bps)} · W ${rate(io?.write_bps)}`, ...others].join("\n"),
      disks.reduce<number | undefined>((max, d) => (isFiniteNumber(d.percent) && (max === undefined || d.percent > max) ? d.percent : max), undefined),
    );

    this.set("uptime", m.ts, duration(m.uptime_secs), m.host ? `host ${m.host}` : "");
    this.set("processes", m.ts, num(m.processes), "running on the host");

    const lh = m.livehub;
    const transports = Object.entries(lh?.transports ?? {})
      .filter(([, n]) => isFiniteNumber(n) && n > 0)
      .map(([name, n]) => `${name} ${num(n)}`)
      .join(" · ");
    this.set(
      "livehub",
      m.ts,
      lh?.connections === 1 ? "1 connection" : `${num(lh?.connections)} connections`,
      [
        transports || "no connections",
        `${num(lh?.publications_per_sec, 1)} pub/s · ${num(lh?.deliveries_per_sec, 1)} deliveries/s`,
        `${num(lh?.subscriptions)} subscriptions · RSS ${bytes(lh?.memory_rss)} · up ${duration(lh?.uptime_secs)}`,
      ].join("\n"),
    );
  }

  private set(id: CardId, ts: number, value: string, sub: string, meterPercent?: number): void {
    const card = this.cards.get(id)!;
    card.el.dataset.updated = String(ts);
    setText(card.value, value);
    setText(card.sub, sub);
    if (card.meter) {
      const p = isFiniteNumber(meterPercent) ? Math.max(0, Math.min(100, meterPercent)) : 0;
      (card.meter.firstElementChild as HTMLElement).style.width = `${p}%`;
      card.meter.setAttribute("aria-valuenow", p.toFixed(0));
      card.meter.classList.toggle("hot", p > HOT_PERCENT);
      card.el.classList.toggle("hot", p > HOT_PERCENT);
    }
  }
}
