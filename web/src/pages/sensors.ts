/**
 * Sensors and weather: a high-rate sensor (`sensors/{id}`, 10 Hz) received in 100 ms batches and
 * drawn once per animation frame, the weather stations, and the alerts.
 */

import type { Message } from "../../../clients/js/src/index.js";
import { unavailable, type SensorInfo } from "../catalog.js";
import { LiveChart, type Row, decimalsFor } from "../chart.js";
import { h, note, setText, simulatedBadge } from "../dom.js";
import { isFiniteNumber, num } from "../format.js";
import { fetchHistory } from "../history.js";
import { RangePicker } from "../range-picker.js";
import { type Range, SeriesError, bucketRows, coverageNote, fetchSeries } from "../series.js";
import type { Page, PageContext } from "./page.js";
import { Weather } from "./weather.js";

/**
 * A bound on the chart's rows: a range's few hundred buckets plus the live samples of the
 * newest step (3,000 at 10 Hz in a 5-minute step), with room to spare.
 */
const CHART_ROWS = 4000;
/** The fields charted, in the order of the chart's series. */
const FIELDS = ["temperature_c", "humidity_pct"];
/** The batching interval of the sensor subscription, in ms. */
const BATCH_MS = 100;
/** Batches to average the measured rate over (two seconds). */
const RATE_WINDOW_MS = 2000;

interface SensorSample {
  ts: number;
  temperature_c?: number;
  humidity_pct?: number;
  pressure_hpa?: number;
  light_lux?: number;
}

function isSample(data: unknown): data is SensorSample {
  return data !== null && typeof data === "object" && isFiniteNumber((data as { ts?: unknown }).ts);
}

function row(s: SensorSample): Row {
  return { ts: s.ts, values: [s.temperature_c ?? null, s.humidity_pct ?? null] };
}

/** One sensor: the chart and the figures beside it. */
class SensorView {
  readonly el: HTMLElement;
  private readonly chart: LiveChart;
  private readonly stats = { temperature: h("b", {}, "–"), humidity: h("b", {}, "–"), pressure: h("b", {}, "–"), light: h("b", {}, "–"), rate: h("b", {}, "–") };
  private latest: SensorSample | null = null;
  private arrivals: number[] = [];
  private active = false;
  private readonly off: () => void;
  /** Loads in flight: an answer to an older one (another range picked since) is dropped. */
  private loads = 0;

  constructor(
    private readonly info: SensorInfo,
    subscribe: (channel: string, onBatch: (ms: Message[]) => void, onGap: () => void) => () => void,
    private readonly picker: RangePicker,
  ) {
    this.chart = new LiveChart({
      key: "sensor",
      title: info.name,
      series: [
        { label: "Temperature", color: "#fb923c", width: 1.5, scale: "°C" },
        { label: "Humidity", color: "#38bdf8", width: 1.5, scale: "%" },
      ],
      axes: [
        { scale: "°C", format: (v, step) => `${num(v, decimalsFor(step))} °C`, padded: true },
        { scale: "%", format: (v, step) => `${num(v, decimalsFor(step))} %`, side: "right", padded: true },
      ],
      capacity: CHART_ROWS,
      // Ten readings a second: a second without any is an outage, not a quiet sensor.
      gapMs: 1000,
      height: 300,
      legendValue: (v, i) => (i === 0 ? `${num(v, 2)} °C` : `${num(v, 1)} %`),
    });
    const stat = (name: string, value: HTMLElement) => h("div", { class: "stat" }, h("span", { class: "muted" }, name), value);
    this.el = h(
      "div",
      { class: "sensor-view" },
      this.chart.el,
      h(
        "div",
        { class: "stats" },
        stat("Temperature", this.stats.temperature),
        stat("Humidity", this.stats.humidity),
        stat("Pressure", this.stats.pressure),
        stat("Light", this.stats.light),
        stat("Received", this.stats.rate),
      ),
    );
    this.off = subscribe(info.channel, (ms) => this.onBatch(ms), () => void this.load());
    this.setRange(picker.range);
  }

  /** Shows `range` and loads it. */
  setRange(range: Range): void {
    this.chart.setRange(range);
    void this.load();
  }

  /** Draws the picked range from the series endpoint; the newest reading fills the figures. */
  async load(): Promise<void> {
    const load = ++this.loads;
    const { channel } = this.info;
    this.chart.setLoading(true);
    if (!this.latest) {
      const newest = (await fetchHistory(channel, 1)).map((p) => p.data).filter(isSample)[0];
      if (newest && !this.latest) {
        this.latest = newest;
        this.showStats();
      }
    }
    try {
      const answer = await fetchSeries(channel, FIELDS, this.picker.range);
      if (load !== this.loads) {
        return;
      }
      this.chart.load(bucketRows(answer, FIELDS), answer.to);
      this.picker.setNote(coverageNote(answer, channel));
    } catch (e) {
      if (load !== this.loads) {
        return;
      }
      const unknown = e instanceof SeriesError && e.code === "unknown_field";
      this.picker.setNote(unknown ? `Nothing held on ${channel} yet.` : `The history could not be loaded: ${e instanceof SeriesError ? e.message : String(e)}.`);
    }
    this.chart.setLoading(false);
  }

  setActive(active: boolean): void {
    this.active = active;
    this.chart.setActive(active);
    this.showStats();
  }

  close(): void {
    this.off();
    this.chart.setActive(false);
  }

  private onBatch(messages: Message[]): void {
    const now = performance.now();
    for (const m of messages) {
      if (isSample(m.data)) {
        this.chart.push(row(m.data));
        this.latest = m.data;
        this.arrivals.push(now);
      }
    }
    while (this.arrivals.length && this.arrivals[0]! < now - RATE_WINDOW_MS) {
      this.arrivals.shift();
    }
    this.showStats();
  }

  private showStats(): void {
    const s = this.latest;
    if (!this.active || !s) {
      return;
    }
    setText(this.stats.temperature, `${num(s.temperature_c, 2)} °C`);
    setText(this.stats.humidity, `${num(s.humidity_pct, 1)} %`);
    setText(this.stats.pressure, `${num(s.pressure_hpa, 1)} hPa`);
    setText(this.stats.light, `${num(s.light_lux, 0)} lx`);
    setText(this.stats.rate, `${num(this.arrivals.length / (RATE_WINDOW_MS / 1000), 1)} msg/s`);
  }
}

export function sensorsPage({ conn, catalog, root }: PageContext): Page {
  let active = false;
  let sensor: SensorView | null = null;
  let weather: Weather | null = null;
  const picker = new RangePicker("sensors", (r) => sensor?.setRange(r));

  const sensorPanel = h("section", { class: "panel" }, h("div", { class: "loading" }, "Loading the sensors…"));
  const weatherPanel = h("section", { class: "panel" }, h("div", { class: "loading" }, "Loading the stations…"));
  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h2", {}, "Sensors & weather ", simulatedBadge()),
      h("p", { class: "muted" }, `An IoT sensor at 10 Hz, received in ${BATCH_MS} ms batches and drawn once per frame; weather stations and their alerts.`),
    ),
    sensorPanel,
    weatherPanel,
  );

  const subscribe = (channel: string, onBatch: (ms: Message[]) => void, onGap: () => void) =>
    conn.subscribe(channel, { buffer: BATCH_MS }, { batch: onBatch, unrecovered: onGap });

  function showSensor(info: SensorInfo, holder: HTMLElement): void {
    sensor?.close();
    sensor = new SensorView(info, subscribe, picker);
    holder.replaceChildren(sensor.el);
    sensor.setActive(active);
  }

  void catalog.then((cat) => {
    const sensorsProblem = unavailable(cat, cat?.sensors, "sensors");
    const sensors = cat?.sensors?.sensors ?? [];
    if (sensorsProblem || sensors.length === 0) {
      sensorPanel.replaceChildren(note(sensorsProblem?.title ?? "No sensors", sensorsProblem?.text ?? "The sensor source lists no sensors."));
    } else {
      const holder = h("div");
      const first = sensors.find((s) => s.id === "lab-1") ?? sensors[0]!;
      const head = h("div", { class: "panel-head" }, h("h3", {}, "Sensor"));
      if (sensors.length > 1) {
        const select = h("select", { "aria-label": "Sensor" }, ...sensors.map((s) => h("option", { value: s.id, selected: s === first }, s.name)));
        select.addEventListener("change", () => {
          const info = sensors.find((s) => s.id === select.value);
          if (info) {
            showSensor(info, holder);
          }
        });
        head.append(select);
      } else {
        head.append(h("span", { class: "muted" }, `${first.name} · ${first.channel}`));
      }
      sensorPanel.replaceChildren(head, picker.el, holder);
      showSensor(first, holder);
    }

    const weatherProblem = unavailable(cat, cat?.weather, "weather");
    const stations = cat?.weather?.stations ?? [];
    if (weatherProblem) {
      weatherPanel.replaceChildren(note(weatherProblem.title, weatherProblem.text));
      return;
    }
    weather = new Weather(conn, stations, cat?.weather?.alerts_channel ?? "weather/alerts");
    weatherPanel.replaceChildren(
      h("div", { class: "weather-grid" }, h("div", {}, h("h3", {}, "Stations"), weather.stationsEl), h("div", {}, h("h3", {}, "Alerts"), weather.alertsEl)),
    );
    weather.setActive(active);
  });

  return {
    id: "sensors",
    show() {
      active = true;
      sensor?.setActive(true);
      weather?.setActive(true);
    },
    hide() {
      active = false;
      sensor?.setActive(false);
      weather?.setActive(false);
    },
    resync() {
      void sensor?.load();
      void weather?.loadAlerts();
    },
  };
}

