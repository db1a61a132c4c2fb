/**
 * Time charts on uPlot: a range of the past from the series endpoint, then live rows (see
 * `series-buffer.ts`), drawn at most once per animation frame and only while the chart's page
 * is on screen.
 */

import uPlot from "uplot";
import { h, setText } from "./dom.js";
import { clockTime, time } from "./format.js";
import type { Range } from "./series.js";
import { type BucketRow, type Row, SeriesBuffer } from "./series-buffer.js";

export type { BucketRow, Row } from "./series-buffer.js";

export interface SeriesSpec {
  label: string;
  color: string;
  width?: number;
  /** Fill under the line. */
  fill?: string;
  /** The y scale, when the chart has two. */
  scale?: string;
  /** Leave it out of the legend above the chart. */
  hideInLegend?: boolean;
  /**
   * Series that share one legend entry, with this label and no value (the per-core CPU lines):
   * the first of them draws the entry, the others are left out.
   */
  legendGroup?: string;
}

export interface AxisSpec {
  scale: string;
  /** A tick label; `step` is the distance between ticks, to choose how many decimals to show. */
  format: (v: number, step: number) => string;
  side?: "left" | "right";
  /** Fixed range, e.g. 0–100 for percentages. */
  range?: [number, number];
  /** Fit the data closely instead of starting at zero (temperatures, pressures). */
  padded?: boolean;
  /** Tick steps to choose from (e.g. `BYTE_STEPS`); uPlot's decimal ones otherwise. */
  incrs?: number[];
}

/** Tick steps for byte axes: powers of two, so that ticks fall on round binary units (512 B, 1 KiB, 1.5 KiB…). */
export const BYTE_STEPS: number[] = Array.from({ length: 51 }, (_, i) => 2 ** i);

export interface ChartSpec {
  /** `data-chart` of the container. */
  key: string;
  title: string;
  series: SeriesSpec[];
  axes: AxisSpec[];
  /** Most rows kept, whatever the range. */
  capacity: number;
  /**
   * Live samples further apart than this (ms), or buckets further apart than one step and this,
   * are not joined by a line: the data between them is missing.
   */
  gapMs?: number;
  height?: number;
  /** Formats a series' newest value in the legend. */
  legendValue?: (v: number | null, i: number) => string;
}

/** Below this width (px) a chart is on a phone: see `LiveChart.options`. */
const NARROW_PX = 520;
/** Right padding that keeps the last time label (about 50 px wide, centred on its tick) inside the canvas. */
const LAST_LABEL_ROOM = 28;

/** The time axis spans at least this long, so that a chart with few points fills from the right. */
const MIN_WINDOW_SECS = 60;
/** Time-axis steps, in seconds: whole seconds, as the labels show no fractions; up to 6 h for a day. */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];

/** A colour of the current theme (`--chart-axis`, `--chart-grid`), read when a plot is built. */
function themeColor(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Every chart, to rebuild their plots when the theme changes (canvas colours are not CSS). */
const charts = new Set<LiveChart>();

/** Rebuilds every chart's plot with the colours of the theme now in force. */
export function redrawCharts(): void {
  for (const chart of charts) {
    chart.rebuild();
  }
}
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** A chart that draws its buffer on the next animation frame after a change, while active. */
export class LiveChart {
  /** The container, `[data-chart]` with `data-points`. */
  readonly el: HTMLElement;
  readonly buffer: SeriesBuffer;
  private plot: uPlot | null = null;
  private readonly holder: HTMLElement;
  private readonly legend: HTMLElement;
  private legendValues: HTMLElement[] = [];
  private active = false;
  private frame = 0;
  /** Whether the plot was built for a narrow width (see `options`). */
  private narrow = false;
  private readonly resize: ResizeObserver;

  constructor(private spec: ChartSpec) {
    this.buffer = new SeriesBuffer(spec.series.length, { capacity: spec.capacity, ...(spec.gapMs !== undefined ? { gapMs: spec.gapMs } : {}) });
    this.legend = h("div", { class: "legend" });
    this.holder = h("div", { class: "plot", style: `height:${spec.height ?? 200}px` });
    this.el = h(
      "div",
      { class: "chart", "data-chart": spec.key, "data-points": 0, "data-gaps": 0, "data-live": 0 },
      h("div", { class: "chart-head" }, h("h3", {}, spec.title), this.legend),
      this.holder,
    );
    this.buildLegend();
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(this.holder);
    charts.add(this);
  }

  /** Builds the plot again on the next draw (new colours, new axes). */
  rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    this.invalidate();
  }

  /** Replaces the series (same axes); the plot is rebuilt on the next draw. */
  setSeries(series: SeriesSpec[]): void {
    this.spec = { ...this.spec, series };
    this.buffer.setSeriesCount(series.length);
    this.plot?.destroy();
    this.plot = null;
    this.buildLegend();
    this.invalidate();
  }

  get seriesCount(): number {
    return this.spec.series.length;
  }

  /** Live samples taken (`data-live`): the rows count goes down when a step's samples fold. */
  private live = 0;

  /** Adds one live row. */
  push(row: Row): void {
    if (this.buffer.push(row)) {
      this.live++;
      this.invalidate();
    }
  }

  /** Shows `range`: that far back, in buckets of its step (`data-range`, `data-step`). */
  setRange(range: Range): void {
    this.buffer.setWindow(range.spanMs, range.stepMs);
    this.el.dataset.range = range.id;
    this.el.dataset.step = String(range.stepMs);
    // The time axis labels change with the range (seconds or not).
    this.rebuild();
  }

  /** Replaces the past with a series answer's buckets (up to `to`), keeping later live rows. */
  load(buckets: BucketRow[], to: number): void {
    this.buffer.load(buckets, to);
    this.invalidate();
  }

  /** Shows "Loading history…" over the chart while history is on its way (`data-loading`). */
  setLoading(loading: boolean): void {
    this.el.toggleAttribute("data-loading", loading);
  }

  /** Draws while its page is shown; stops drawing (but keeps collecting) when not. */
  setActive(active: boolean): void {
    this.active = active;
    if (active) {
      this.invalidate();
    } else if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
  }

  /** Notes a change: `data-points` now, the drawing on the next frame. */
  invalidate(): void {
    this.el.dataset.points = String(this.buffer.length);
    this.el.dataset.gaps = String(this.buffer.gaps);
    this.el.dataset.live = String(this.live);
    this.el.dataset.updated = String(this.buffer.lastTs);
    if (this.active && !this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }
  }

  private draw(): void {
    if (!this.active) {
      return;
    }
    const width = this.holder.clientWidth;
    if (width === 0) {
      return;
    }
    if (!this.plot) {
      this.plot = new uPlot(this.options(width), this.buffer.data() as uPlot.AlignedData, this.holder);
    } else {
      this.plot.setData(this.buffer.data() as uPlot.AlignedData);
    }
    this.spec.series.forEach((_, i) => {
      const el = this.legendValues[i];
      if (el) {
        const v = this.buffer.last(i);
        setText(el, this.spec.legendValue ? this.spec.legendValue(v, i) : String(v ?? "–"));
      }
    });
  }

  private fit(): void {
    const width = this.holder.clientWidth;
    if (this.plot && width > 0 && width < NARROW_PX !== this.narrow) {
      // The axes depend on the width: build the plot again.
      this.plot.destroy();
      this.plot = null;
      this.invalidate();
    } else if (this.plot && width > 0 && width !== this.plot.width) {
      this.plot.setSize({ width, height: this.spec.height ?? 200 });
    } else if (!this.plot && width > 0) {
      this.invalidate();
    }
  }

  private buildLegend(): void {
    this.legend.replaceChildren();
    this.legendValues = [];
    const grouped = new Set<string>();
    this.spec.series.forEach((s, i) => {
      if (s.legendGroup !== undefined) {
        if (!grouped.has(s.legendGroup)) {
          grouped.add(s.legendGroup);
          this.legend.append(h("span", { class: "key group" }, h("i", { style: `background:${s.color}` }), s.legendGroup));
        }
        return;
      }
      if (s.hideInLegend) {
        return;
      }
      const value = h("b", {}, "–");
      this.legendValues[i] = value;
      this.legend.append(h("span", { class: "key" }, h("i", { style: `background:${s.color}` }), `${s.label} `, value));
    });
  }

  private options(width: number): uPlot.Options {
    const { spec } = this;
    const AXIS_STROKE = themeColor("--chart-axis", "#8a94a6");
    const GRID_STROKE = themeColor("--chart-grid", "rgba(148, 163, 184, 0.09)");
    // On a phone, two 64 px axes would leave the plot a third of the screen: narrower axes, and
    // the right-hand one left out (its series' value stays in the legend).
    const narrow = width < NARROW_PX;
    this.narrow = narrow;
    const rightAxis = spec.axes.some((a) => a.side === "right") && !narrow;
    // The whole range, even where the server holds nothing: an empty left part says so.
    const span = this.buffer.spanMs;
    const windowSecs = Number.isFinite(span) ? span / 1000 : MIN_WINDOW_SECS;
    // Over an hour or more, ticks are minutes apart at least: no seconds in their labels.
    const hours = span >= 3600_000;
    const label = hours ? clockTime : time;
    return {
      width,
      height: spec.height ?? 200,
      legend: { show: false },
      cursor: { show: false },
      // Room on the right for half of the last time label, unless an axis is there.
      padding: [8, rightAxis ? 4 : LAST_LABEL_ROOM, 0, 0],
      scales: Object.fromEntries([
        ["x", { time: true, range: (_u: uPlot, min: number, max: number): uPlot.Range.MinMax => [Math.min(min, max - windowSecs), max] }],
        ...spec.axes.map((a) => [a.scale, a.range ? { range: a.range } : { range: (_u: uPlot, min: number, max: number) => (a.padded ? paddedRange(min, max) : niceRange(min, max)) }]),
      ]),
      axes: [
        {
          stroke: AXIS_STROKE,
          font: FONT,
          space: 70,
          grid: { stroke: GRID_STROKE, width: 1 },
          ticks: { stroke: GRID_STROKE, width: 1 },
          incrs: hours ? TIME_STEPS.filter((secs) => secs >= 60) : TIME_STEPS,
          values: (_u, splits) => splits.map((v) => label(v * 1000)),
        },
        ...spec.axes.map(
          (a): uPlot.Axis => ({
            scale: a.scale,
            side: a.side === "right" ? 1 : 3,
            stroke: AXIS_STROKE,
            font: FONT,
            // As wide as the longest label: a fixed width cut "256 MiB" and wasted room for "0 %".
            size: (_u: uPlot, values: string[] | null) => axisWidth(values, narrow ? 36 : 44),
            show: a.side !== "right" || rightAxis,
            grid: { show: a.side !== "right", stroke: GRID_STROKE, width: 1 },
            ticks: { show: false },
            // A label every 40 px at least: more ticks only bring more decimals.
            space: 40,
            values: (_u, splits) => splits.map((v) => a.format(v, step(splits))),
            ...(a.incrs ? { incrs: a.incrs } : {}),
          }),
        ),
      ],
      series: [
        {},
        ...spec.series.map(
          (s): uPlot.Series => ({
            label: s.label,
            stroke: s.color,
            width: s.width ?? 1.5,
            scale: s.scale ?? spec.axes[0]?.scale ?? "y",
            // A value with no neighbour (a bucket between two gaps) has no line to be part of:
            // it is drawn as a dot, or it would not show at all.
            points: { show: true, size: 4, filter: isolated },
            ...(s.fill ? { fill: s.fill } : {}),
          }),
        ),
      ],
    };
  }
}

/** The indices of series `i`'s values that have no value on either side. */
function isolated(u: uPlot, i: number): number[] {
  const ys = u.data[i] ?? [];
  const found: number[] = [];
  for (let j = 0; j < ys.length; j++) {
    if (ys[j] != null && ys[j - 1] == null && ys[j + 1] == null) {
      found.push(j);
    }
  }
  return found;
}

/** The distance between ticks (0 with fewer than two). */
function step(splits: number[]): number {
  return splits.length > 1 ? Math.abs(splits[1]! - splits[0]!) : 0;
}

/** Decimals that tell ticks `step` apart: 0.05 apart needs two, 5 apart none. */
export function decimalsFor(step: number, max = 3): number {
  if (!(step > 0) || step >= 1) {
    return 0;
  }
  return Math.min(max, Math.ceil(-Math.log10(step) - 1e-9));
}

let measure: CanvasRenderingContext2D | null = null;

/** The pixels a y axis needs for `labels` in the axis font, at least `min`. */
function axisWidth(labels: string[] | null, min: number): number {
  measure ??= document.createElement("canvas").getContext("2d");
  if (!measure || !labels) {
    return min;
  }
  measure.font = FONT;
  const widest = labels.reduce((w, label) => Math.max(w, measure!.measureText(label).width), 0);
  return Math.max(min, Math.ceil(widest) + 12);
}

/** A range from 0 (or below, for negative data) with headroom, so that flat data does not fill the plot. */
function niceRange(min: number, max: number): [number, number] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    return [0, 1];
  }
  const lo = Math.min(0, min);
  const hi = max <= lo ? lo + 1 : max + (max - lo) * 0.1;
  return [lo, hi];
}

/** A range around the data, for values far from zero (pressure, temperature). */
export function paddedRange(min: number, max: number): [number, number] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    return [0, 1];
  }
  // At least a quarter of a unit each side: a chart opening on a few quiet buckets would
  // otherwise tick every 0.05, and two decimals widen the axis into a phone's plot.
  const pad = Math.max((max - min) * 0.15, Math.abs(max) * 0.002, 0.25);
  return [min - pad, max + pad];
}
