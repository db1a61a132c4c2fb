/** Overview: the host's real metrics (`metrics/system`) as cards and charts, and the activity feed. */

import type { Message } from "../../../clients/js/src/index.js";
import { activityList, logActivity } from "../activity.js";
import { BYTE_STEPS, LiveChart, type Row, type SeriesSpec } from "../chart.js";
import { h, note, setText } from "../dom.js";
import { bytesShort, isFiniteNumber, percent, rate, time } from "../format.js";
import { HOST_RULES, HostAlerts, type HostAlert } from "../host-alerts.js";
import { fetchHistory } from "../history.js";
import type { Page, PageContext } from "./page.js";
import { SystemCards, type SystemMetrics } from "./system-cards.js";

const DEFAULT_CHANNEL = "metrics/system";
/** Ten minutes at one sample a second: what the server keeps for `metrics/`. */
const HISTORY_ROWS = 600;
/**
 * Fifteen minutes: more than history holds, so that a freshly opened page keeps growing for a
 * while instead of shifting out its oldest row at once.
 */
const CHART_ROWS = 900;

/**
 * Samples further apart than this are not joined: the source publishes every second, so five
 * missing ones mean an outage, and a line across it would make up data.
 */
const GAP_MS = 5000;

const MEMORY: SeriesSpec = { label: "Memory", color: "#60a5fa", width: 2, fill: "rgba(96, 165, 250, 0.10)" };
const SWAP: SeriesSpec = { label: "Swap", color: "#f472b6", width: 1.5 };

const TOTAL: SeriesSpec = { label: "Total", color: "#34d399", width: 2, fill: "rgba(52, 211, 153, 0.10)" };

function isMetrics(data: unknown): data is SystemMetrics {
  return data !== null && typeof data === "object" && isFiniteNumber((data as { ts?: unknown }).ts);
}

/** Bytes on an axis, without the rate suffix (the title says per second). */
function axisBytes(v: number): string {
  return v === 0 ? "0" : bytesShort(v);
}

/** How many host alerts the list keeps. */
const MAX_HOST_ALERTS = 20;

export function overviewPage({ conn, catalog, root }: PageContext): Page {
  const hostAlerts = new HostAlerts();
  const hostAlertsList = h("ul", { id: "host-alerts", class: "alerts" }, h("li", { class: "empty" }, "No host alerts so far."));

  /** Lists an alert on the real metrics, newest first, and says it in the activity feed. */
  function showHostAlert(alert: HostAlert): void {
    const severity = alert.state === "firing" ? "danger" : "info";
    hostAlertsList.querySelector(".empty")?.remove();
    hostAlertsList.prepend(
      h(
        "li",
        { "data-rule": alert.rule, "data-severity": severity, "data-state": alert.state },
        h("span", { class: `sev ${severity}` }, alert.state === "firing" ? "alert" : "ok"),
        h("div", {}, h("strong", {}, alert.text)),
        h("time", { class: "muted" }, time(alert.ts)),
      ),
    );
    while (hostAlertsList.childElementCount > MAX_HOST_ALERTS) {
      hostAlertsList.lastElementChild?.remove();
    }
    logActivity("alert", alert.text, alert.state === "firing" ? "danger" : "ok", alert.ts);
  }

  let channel = DEFAULT_CHANNEL;
  const cards = new SystemCards();
  const host = h("b", {}, "this host");
  const notes = h("div", { class: "notes" });

  const cpu = new LiveChart({
    key: "cpu",
    title: "CPU",
    series: [TOTAL],
    axes: [{ scale: "%", format: (v) => `${v} %`, range: [0, 100] }],
    capacity: CHART_ROWS,
    gapMs: GAP_MS,
    legendValue: (v) => percent(v),
  });
  const memory = new LiveChart({
    key: "memory",
    title: "Memory",
    series: [MEMORY, SWAP],
    axes: [{ scale: "%", format: (v) => `${v} %`, range: [0, 100] }],
    capacity: CHART_ROWS,
    gapMs: GAP_MS,
    legendValue: (v) => percent(v),
  });
  const network = new LiveChart({
    key: "network",
    title: "Network (per second)",
    series: [
      { label: "↓ rx", color: "#22d3ee", width: 1.5, fill: "rgba(34, 211, 238, 0.08)" },
      { label: "↑ tx", color: "#a78bfa", width: 1.5 },
    ],
    axes: [{ scale: "B/s", format: axisBytes, incrs: BYTE_STEPS }],
    capacity: CHART_ROWS,
    gapMs: GAP_MS,
    legendValue: (v) => rate(v),
  });
  const disk = new LiveChart({
    key: "disk",
    title: "Disk I/O (per second)",
    series: [
      { label: "read", color: "#fbbf24", width: 1.5, fill: "rgba(251, 191, 36, 0.08)" },
      { label: "write", color: "#fb7185", width: 1.5 },
    ],
    axes: [{ scale: "B/s", format: axisBytes, incrs: BYTE_STEPS }],
    capacity: CHART_ROWS,
    gapMs: GAP_MS,
    legendValue: (v) => rate(v),
  });
  const charts = [cpu, memory, network, disk];

  const body = h("div", { class: "overview" }, cards.el, h("div", { class: "charts" }, ...charts.map((c) => c.el)));
  root.append(
    h("div", { class: "page-head" }, h("h2", {}, "Overview"), h("p", { class: "muted" }, "Real metrics of ", host, ", sampled every second")),
    notes,
    h(
      "div",
      { class: "overview-grid" },
      body,
      h(
        "div",
        { class: "overview-side" },
        h(
          "aside",
          { class: "panel host-alerts-panel" },
          h("h3", { title: HOST_RULES.map((r) => `${r.label} ≥ ${r.threshold} %`).join(", ") }, "Host alerts"),
          hostAlertsList,
        ),
        h("aside", { class: "panel activity-panel" }, h("h3", {}, "Activity"), activityList),
      ),
    ),
  );

  let active = false;
  let latest: SystemMetrics | null = null;
  let cardsStale = false;

  /** Sizes the CPU chart to the host's cores: the cores first, faint, and the total on top. */
  function fitCores(m: SystemMetrics): void {
    const cores = m.cpu?.cores?.length ?? 0;
    if (cores + 1 !== cpu.seriesCount) {
      const coreSeries = Array.from({ length: cores }, (_, i): SeriesSpec => ({
        label: `core ${i}`,
        color: `hsla(${Math.round((i * 360) / Math.max(cores, 1))}, 70%, 68%, 0.35)`,
        width: 1,
        legendGroup: `each of ${cores} cores`,
      }));
      cpu.setSeries([...coreSeries, TOTAL]);
    }
  }

  /** A host without swap gets no swap line, and no "Swap –" in the legend. */
  function fitSwap(m: SystemMetrics): void {
    const series = m.swap?.total ? 2 : 1;
    if (series !== memory.seriesCount) {
      memory.setSeries(series === 2 ? [MEMORY, SWAP] : [MEMORY]);
    }
  }

  function rows(m: SystemMetrics): [Row, Row, Row, Row] {
    const cores = (m.cpu?.cores ?? []).slice(0, cpu.seriesCount - 1);
    const total = m.cpu?.total ?? null;
    return [
      { ts: m.ts, values: [...cores, total] },
      { ts: m.ts, values: [m.memory?.percent ?? null, m.swap?.total ? (m.swap.percent ?? null) : null] },
      { ts: m.ts, values: [m.network?.rx_bps ?? null, m.network?.tx_bps ?? null] },
      { ts: m.ts, values: [m.disk_io?.read_bps ?? null, m.disk_io?.write_bps ?? null] },
    ];
  }

  function showCards(m: SystemMetrics): void {
    if (latest && m.ts < latest.ts) {
      return;
    }
    latest = m;
    if (active) {
      cards.update(m);
      setText(host, m.host ?? "this host");
      cardsStale = false;
    } else {
      cardsStale = true;
    }
  }

  function onMessage(msg: Message): void {
    if (!isMetrics(msg.data)) {
      return;
    }
    fitCores(msg.data);
    fitSwap(msg.data);
    hostAlerts.feed(msg.data).forEach(showHostAlert);
    rows(msg.data).forEach((row, i) => charts[i]!.push(row));
    showCards(msg.data);
  }

  async function loadHistory(): Promise<void> {
    charts.forEach((c) => c.setLoading(true));
    const publications = (await fetchHistory(channel, HISTORY_ROWS)).map((p) => p.data).filter(isMetrics);
    charts.forEach((c) => c.setLoading(false));
    const newest = publications[publications.length - 1];
    if (!newest) {
      return;
    }
    fitCores(newest);
    fitSwap(newest);
    const columns: Row[][] = [[], [], [], []];
    for (const m of publications) {
      rows(m).forEach((row, i) => columns[i]!.push(row));
    }
    charts.forEach((c, i) => c.merge(columns[i]!));
    showCards(newest);
  }

  let unsubscribe: (() => void) | null = conn.subscribe(channel, { latest: true }, { message: onMessage, unrecovered: () => void loadHistory() });
  void loadHistory();

  void catalog.then((cat) => {
    const system = cat?.system;
    if (!cat) {
      notes.append(note("The source catalog is unavailable", `The server did not answer GET /api/sources. The charts fill in if anything publishes on ${channel}.`));
    } else if (system && system.enabled === false) {
      unsubscribe?.();
      unsubscribe = null;
      body.hidden = true;
      notes.append(note("System metrics are switched off", "The server runs with [sources.system] disabled, so there is nothing to chart. The activity feed still works."));
    } else if (system?.channel && system.channel !== channel) {
      unsubscribe?.();
      channel = system.channel;
      unsubscribe = conn.subscribe(channel, { latest: true }, { message: onMessage, unrecovered: () => void loadHistory() });
      void loadHistory();
    }
  });

  return {
    id: "overview",
    show() {
      active = true;
      if (cardsStale && latest) {
        cards.update(latest);
        setText(host, latest.host ?? "this host");
        cardsStale = false;
      }
      charts.forEach((c) => c.setActive(true));
    },
    hide() {
      active = false;
      charts.forEach((c) => c.setActive(false));
    },
    resync() {
      if (unsubscribe) {
        void loadHistory();
      }
    },
  };
}

