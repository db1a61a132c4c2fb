/**
 * The rows a time chart draws: buckets of a series answer (`GET …/series`), then live rows,
 * which are folded into buckets of the same step once their step is over. So a chart holds a
 * few hundred points whatever the range and the rate, and the newest step shows every sample.
 * Free of the DOM and of uPlot, so that the tests run it in Node.
 */

/** One row: a time and one value per series (`null`: nothing for that series). */
export interface Row {
  /** Milliseconds since the Unix epoch. */
  ts: number;
  values: (number | null)[];
}

/** A bucket of a series answer: averages, and how many samples each stands for. */
export interface BucketRow extends Row {
  /** Samples behind each value (0 where the value is `null`). */
  counts: number[];
}

interface Stored {
  /** Milliseconds: a bucket's start, or a live sample's time. */
  ts: number;
  values: (number | null)[];
  counts: number[];
  /** A bucket (from the series, or live samples folded) rather than one live sample. */
  bucket: boolean;
}

/** Where a gap marker goes: just after the last row before the gap, so it does not shift the line. */
const GAP_OFFSET_SECS = 0.001;

export interface BufferOptions {
  /** Most rows kept, a bound on memory whatever the window holds. */
  capacity: number;
  /** Live samples further apart than this (ms) are not joined by a line: the data between is missing. */
  gapMs?: number;
}

/**
 * The rows of one chart in time order, and their columns for uPlot with gap markers (a row of
 * nulls) wherever rows are further apart than one step plus `gapMs`: an empty bucket, an outage.
 */
export class SeriesBuffer {
  private rows: Stored[] = [];
  /** Index of the first live (not yet folded) row; every row from there on is live. */
  private firstLive = 0;
  /** Bucket width (ms); 0 keeps every live row as it is. */
  private step = 0;
  /** How far back from the newest row the chart reaches (ms). */
  private span = Number.POSITIVE_INFINITY;
  private cache: { xs: number[]; ys: (number | null)[][]; gaps: number } | null = null;
  private readonly gapMs: number;

  constructor(
    private series: number,
    private readonly options: BufferOptions,
  ) {
    this.gapMs = options.gapMs ?? Number.POSITIVE_INFINITY;
  }

  /** Bucket width (ms) of the range shown. */
  get stepMs(): number {
    return this.step;
  }

  /** The time the chart spans (ms). */
  get spanMs(): number {
    return this.span;
  }

  /** Rows drawn, gap markers included (`data-points`). */
  get length(): number {
    return this.columns().xs.length;
  }

  /** Gaps drawn (`data-gaps`). */
  get gaps(): number {
    return this.columns().gaps;
  }

  /** Rows held, gap markers excluded. */
  get rowCount(): number {
    return this.rows.length;
  }

  /** Milliseconds of the newest row, or 0. */
  get lastTs(): number {
    return this.rows[this.rows.length - 1]?.ts ?? 0;
  }

  /** The newest value of series `i`: the newest row that has one. */
  last(i: number): number | null {
    for (let j = this.rows.length - 1; j >= 0; j--) {
      const v = this.rows[j]!.values[i];
      if (v !== null && v !== undefined) {
        return v;
      }
    }
    return null;
  }

  /** Shows `spanMs` back from the newest row, in buckets of `stepMs`; what is outside goes. */
  setWindow(spanMs: number, stepMs: number): void {
    this.span = spanMs;
    this.step = stepMs;
    this.trim();
    this.changed();
  }

  /**
   * Replaces the rows with a series answer's non-empty buckets (`buckets`, any order, for
   * `..to`), keeping the live rows from `to` on: those the answer could not have counted. The
   * rows older than the answer's first bucket stay too: a server that lost its history (a
   * restart in memory) no longer has what the page drew, and a gap then shows what is missing.
   */
  load(buckets: BucketRow[], to: number): void {
    const loaded = buckets
      .filter((b) => b.counts.some((c) => c > 0))
      .sort((a, b) => a.ts - b.ts)
      .map((b): Stored => ({ ts: b.ts, values: this.fit(b.values), counts: this.fit(b.counts).map((c) => c ?? 0), bucket: true }));
    const cut = loaded[0]?.ts ?? to;
    const older = this.rows.filter((r) => r.ts < cut);
    const live = this.rows.filter((r) => r.ts >= to && !r.bucket);
    this.rows = [...older, ...loaded];
    // Live rows stay apart only at the end: with buckets loaded, the older ones stay as they
    // are (a step's worth at most); without, they are still the end and fold in their turn.
    const firstOlderLive = older.findIndex((r) => !r.bucket);
    this.firstLive = loaded.length === 0 && firstOlderLive >= 0 ? firstOlderLive : this.rows.length;
    this.rows.push(...live.filter((r) => r.ts > (this.rows[this.rows.length - 1]?.ts ?? Number.NEGATIVE_INFINITY)));
    this.fold();
    this.trim();
    this.changed();
  }

  /** Appends a live row newer than the newest; older rows (repeats, late arrivals) are ignored. */
  push(row: Row): boolean {
    const newest = this.rows[this.rows.length - 1];
    if (newest && row.ts <= newest.ts) {
      return false;
    }
    const values = this.fit(row.values);
    this.rows.push({ ts: row.ts, values, counts: values.map((v) => (v === null ? 0 : 1)), bucket: false });
    this.fold();
    this.trim();
    this.changed();
    return true;
  }

  /** Changes the number of series (CPU cores become known with the first sample); old values are kept. */
  setSeriesCount(n: number): void {
    if (n === this.series) {
      return;
    }
    this.series = n;
    for (const row of this.rows) {
      row.values = this.fit(row.values);
      row.counts = this.fit(row.counts).map((c) => c ?? 0);
    }
    this.changed();
  }

  /** The columns uPlot draws: seconds, then one column per series, gap markers included. */
  data(): [number[], ...(number | null)[][]] {
    const { xs, ys } = this.columns();
    return [xs, ...ys];
  }

  private fit<T>(values: (T | null)[]): (T | null)[] {
    return Array.from({ length: this.series }, (_, i) => values[i] ?? null);
  }

  /** Folds the live rows of every step that is over (a newer row is in a later one) into one bucket each. */
  private fold(): void {
    const step = this.step;
    const newest = this.rows[this.rows.length - 1];
    if (step <= 0 || !newest) {
      return;
    }
    const current = Math.floor(newest.ts / step);
    while (this.firstLive < this.rows.length) {
      const start = this.firstLive;
      const bucket = Math.floor(this.rows[start]!.ts / step);
      if (bucket >= current) {
        return;
      }
      let end = start;
      while (end < this.rows.length && Math.floor(this.rows[end]!.ts / step) === bucket) {
        end++;
      }
      const group = this.rows.slice(start, end);
      const previous = this.rows[start - 1];
      // The answer's last bucket was still filling when it was read: the live rows of the
      // same step complete it.
      const into = previous && previous.bucket && previous.ts === bucket * step ? previous : null;
      const merged = combine(into ? [into, ...group] : group, this.series);
      const folded: Stored = { ts: bucket * step, ...merged, bucket: true };
      if (into) {
        this.rows.splice(start - 1, end - start + 1, folded);
        this.firstLive = start;
      } else {
        this.rows.splice(start, end - start, folded);
        this.firstLive = start + 1;
      }
    }
  }

  /** Drops rows older than the window, and the oldest beyond `capacity`. */
  private trim(): void {
    const newest = this.rows[this.rows.length - 1];
    if (!newest) {
      return;
    }
    // One step of slack: the first bucket starts up to a step before the window does.
    const oldest = newest.ts - this.span - this.step;
    let drop = 0;
    while (drop < this.rows.length && this.rows[drop]!.ts < oldest) {
      drop++;
    }
    drop = Math.max(drop, this.rows.length - this.options.capacity);
    if (drop > 0) {
      this.rows.splice(0, drop);
      this.firstLive = Math.max(0, this.firstLive - drop);
    }
  }

  private changed(): void {
    this.cache = null;
  }

  private columns(): { xs: number[]; ys: (number | null)[][]; gaps: number } {
    if (this.cache) {
      return this.cache;
    }
    const xs: number[] = [];
    const ys: (number | null)[][] = Array.from({ length: this.series }, () => []);
    const apart = this.step + this.gapMs;
    let gaps = 0;
    let previous: Stored | null = null;
    for (const row of this.rows) {
      if (previous && row.ts - previous.ts > apart) {
        xs.push(previous.ts / 1000 + GAP_OFFSET_SECS);
        ys.forEach((col) => col.push(null));
        gaps++;
      }
      xs.push(row.ts / 1000);
      ys.forEach((col, i) => col.push(row.values[i] ?? null));
      previous = row;
    }
    this.cache = { xs, ys, gaps };
    return this.cache;
  }
}

/** The weighted average of `rows`, series by series. */
function combine(rows: { values: (number | null)[]; counts: number[] }[], series: number): { values: (number | null)[]; counts: number[] } {
  const values: (number | null)[] = [];
  const counts: number[] = [];
  for (let i = 0; i < series; i++) {
    let sum = 0;
    let n = 0;
    for (const row of rows) {
      const v = row.values[i];
      const c = row.counts[i] ?? 0;
      if (v !== null && v !== undefined && c > 0) {
        sum += v * c;
        n += c;
      }
    }
    values.push(n > 0 ? sum / n : null);
    counts.push(n);
  }
  return { values, counts };
}
