/** Overview: the host's real metrics (`metrics/system`) as cards and charts, and the activity feed. */

import type { Message } from "../../../clients/js/src/index.js";
import { activityList, logActivity } from "../activity.js";
import { BYTE_STEPS, LiveChart, type Row, type SeriesSpec } from "../chart.js";
import { h, note, setText } from "../dom.js";
import { bytesShort, isFiniteNumber, percent, rate, time } from "../format.js";
import { HOST_RULES, HostAlerts, type HostAlert } from "../host-alerts.js";
import { fetchHistory } from "../history.js";
import { RangePicker } from "../range-picker.js";
import { MAX_FIELDS, SeriesError, bucketRows, coverageNote, fetchSeries } from "../series.js";
import type { Page, PageContext } from "./page.js";
import { SystemCards, type SystemMetrics } from "./system-cards.js";

const DEFAULT_CHANNEL = "metrics/system";
/**
 * A bound on the rows of a chart: a range's few hundred buckets, plus the live samples of the
 * newest step (at most 300 at a sample a second), with room to spare.
 */
const CHART_ROWS = 2000;

/**
 * Samples further apart than this (buckets: one step and this) are not joined: the source
 * publishes every second, so five missing ones mean an outage, and a line across it would make
 * up data.
 */
const GAP_MS = 5000;

/** The fields of each chart in the series request, in the order of its series (`null`: none). */
function chartFields(cores: number, swap: boolean): (string | null)[][] {
  return [
    [...Array.from({ length: cores }, (_, i) => `cpu.cores.${i}`), "cpu.total"],
    ["memory.percent", swap ? "swap.percent" : null],
    ["network.rx_bps", "network.tx_bps"],
    ["disk_io.read_bps", "disk_io.write_bps"],
  ];
}

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

  const picker = new RangePicker("overview", (r) => {
    charts.forEach((c) => c.setRange(r));
    void loadSeries();
  });
  charts.forEach((c) => c.setRange(picker.range));

  const body = h("div", { class: "overview" }, cards.el, picker.el, h("div", { class: "charts" }, ...charts.map((c) => c.el)));
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

  /** Loads in flight: an answer to an older one (another range picked since) is dropped. */
  let loads = 0;

  /**
   * Draws the picked range from the series endpoint: one request for every line of the four
   * charts. The newest publication first gives the shape (cores, swap) and fills the cards.
   */
  async function loadSeries(): Promise<void> {
    const load = ++loads;
    const range = picker.range;
    charts.forEach((c) => c.setLoading(true));
    const newest = latest ?? (await fetchHistory(channel, 1)).map((p) => p.data).filter(isMetrics)[0] ?? null;
    if (newest) {
      fitCores(newest);
      fitSwap(newest);
      showCards(newest);
    }
    const cores = Math.max(0, cpu.seriesCount - 1);
    // The series endpoint reads at most MAX_FIELDS fields: on a huge host, the first cores.
    const fields = chartFields(Math.min(cores, MAX_FIELDS - 7), memory.seriesCount === 2);
    try {
      const answer = await fetchSeries(channel, fields.flat().filter((f): f is string => f !== null), range);
      if (load !== loads) {
        return;
      }
      charts.forEach((c, i) => c.load(bucketRows(answer, fields[i]!), answer.to));
      picker.setNote(coverageNote(answer, channel));
    } catch (e) {
      if (load !== loads) {
        return;
      }
      const why = e instanceof SeriesError ? e.message : String(e);
      // A channel nothing has published on yet has no fields to read: the live samples fill in.
      picker.setNote(e instanceof SeriesError && e.code === "unknown_field" ? `Nothing held on ${channel} yet.` : `The history could not be loaded: ${why}.`);
    }
    charts.forEach((c) => c.setLoading(false));
  }

  let unsubscribe: (() => void) | null = conn.subscribe(channel, { latest: true }, { message: onMessage, unrecovered: () => void loadSeries() });
  void loadSeries();

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
      unsubscribe = conn.subscribe(channel, { latest: true }, { message: onMessage, unrecovered: () => void loadSeries() });
      void loadSeries();
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
        void loadSeries();
      }
    },
  };
}

