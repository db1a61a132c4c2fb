/**
 * A chart's past from the server's downsampling endpoint
 * (`GET /api/channels/{channel}/series?field=…&from=…&step=…`, docs/storage.md), the ranges a
 * page offers, and what to say when the server holds less than the range.
 */

import { authHeaders } from "./credentials.js";
import { num, time } from "./format.js";
import type { BucketRow } from "./series-buffer.js";

export type RangeId = "5m" | "1h" | "24h";

export interface Range {
  id: RangeId;
  /** The picker's label. */
  label: string;
  /** How far back the chart reaches (ms). */
  spanMs: number;
  /** The bucket width (ms): a few hundred points over the span. */
  stepMs: number;
  /** The server's spelling of the step. */
  step: string;
}

/** The ranges on offer: 300, 360 and 288 buckets. */
export const RANGES: readonly Range[] = [
  { id: "5m", label: "5 min", spanMs: 5 * 60_000, stepMs: 1000, step: "1s" },
  { id: "1h", label: "1 h", spanMs: 3_600_000, stepMs: 10_000, step: "10s" },
  { id: "24h", label: "24 h", spanMs: 86_400_000, stepMs: 300_000, step: "5m" },
];

export const DEFAULT_RANGE: RangeId = "1h";

export function isRangeId(value: unknown): value is RangeId {
  return RANGES.some((r) => r.id === value);
}

export function range(id: RangeId): Range {
  return RANGES.find((r) => r.id === id) ?? RANGES[1]!;
}

/** Most fields one request may read (the server's bound). */
export const MAX_FIELDS = 128;

/** What the series endpoint answered, one bucket list per field asked. */
export interface SeriesAnswer {
  from: number;
  /** Exclusive: live publications from here on are not in the answer. */
  to: number;
  stepMs: number;
  /** The oldest publication the server holds for the channel (`null`: none). */
  oldestTs: number | null;
  /** `memory`, `sqlite` or `postgres`. */
  store: string;
  retention: { size: number; maxAgeSecs: number } | null;
  /** By field: bucket start, average and sample count. */
  fields: Map<string, { t: number[]; avg: (number | null)[]; count: number[] }>;
}

/** A refused or failed series read, with the server's error code when it gave one. */
export class SeriesError extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

interface WireBucket {
  t?: number;
  count?: number;
  avg?: number | null;
}

interface WireAnswer {
  from?: number;
  to?: number;
  step_ms?: number;
  oldest_ts?: number | null;
  store?: string;
  retention?: { size?: number; max_age_secs?: number };
  field?: string;
  buckets?: WireBucket[];
  series?: { field?: string; buckets?: WireBucket[] }[];
  error?: { code?: string; message?: string };
}

/**
 * The series of `fields` of `channel` over `range`, ending now. `from` is a multiple of the
 * step, so that buckets fall on the same times from one load to the next; `to` is left to the
 * server's clock, so that a browser clock that is off does not cut the newest data.
 */
export async function fetchSeries(channel: string, fields: string[], range: Range, signal?: AbortSignal): Promise<SeriesAnswer> {
  const path = channel.split("/").map(encodeURIComponent).join("/");
  const from = Math.floor((Date.now() - range.spanMs) / range.stepMs) * range.stepMs;
  const query = new URLSearchParams();
  for (const field of fields.slice(0, MAX_FIELDS)) {
    query.append("field", field);
  }
  query.set("from", String(from));
  query.set("step", range.step);
  let response: Response;
  try {
    response = await fetch(`${location.origin}/api/channels/${path}/series?${query}`, {
      headers: { accept: "application/json", ...authHeaders() },
      cache: "no-store",
      ...(signal ? { signal } : {}),
    });
  } catch (e) {
    throw new SeriesError(signal?.aborted ? "cancelled" : "the server could not be reached", null);
  }
  let body: WireAnswer;
  try {
    body = (await response.json()) as WireAnswer;
  } catch {
    throw new SeriesError(`the server answered ${response.status} without a series`, null);
  }
  if (!response.ok) {
    throw new SeriesError(body.error?.message ?? `the server answered ${response.status}`, body.error?.code ?? null);
  }
  const lists = body.series ?? [{ field: body.field, buckets: body.buckets }];
  const parsed: SeriesAnswer["fields"] = new Map();
  for (const list of lists) {
    const buckets = list.buckets ?? [];
    parsed.set(list.field ?? "", {
      t: buckets.map((b) => b.t ?? 0),
      avg: buckets.map((b) => (typeof b.avg === "number" ? b.avg : null)),
      count: buckets.map((b) => b.count ?? 0),
    });
  }
  return {
    from: body.from ?? from,
    to: body.to ?? Date.now(),
    stepMs: body.step_ms ?? range.stepMs,
    oldestTs: typeof body.oldest_ts === "number" ? body.oldest_ts : null,
    store: body.store ?? "unknown",
    retention: body.retention ? { size: body.retention.size ?? 0, maxAgeSecs: body.retention.max_age_secs ?? 0 } : null,
    fields: parsed,
  };
}

/**
 * One chart's rows from an answer: a row per bucket, with the chart's `fields` (or `null` for
 * a series with no field, such as swap on a host without it) as its columns.
 */
export function bucketRows(answer: SeriesAnswer, fields: (string | null)[]): BucketRow[] {
  const columns = fields.map((f) => (f === null ? undefined : answer.fields.get(f)));
  const times = columns.find((c) => c !== undefined)?.t ?? [];
  return times.map((ts, j) => ({
    ts,
    values: columns.map((c) => c?.avg[j] ?? null),
    counts: columns.map((c) => c?.count[j] ?? 0),
  }));
}

/**
 * What a chart says about its range, or `null` when the data covers it (about): the server
 * holds nothing yet, or nothing before some time inside the range (and why, when it knows).
 */
export function coverageNote(answer: SeriesAnswer, channel: string): string | null {
  const retention = answer.retention;
  const kept = retention ? `at most ${num(retention.size)} publications or ${age(retention.maxAgeSecs)}` : null;
  if (answer.oldestTs === null) {
    return `Nothing published on ${channel} is held yet.`;
  }
  // Data that starts a little after the range does (2 % of it and a bucket) needs no words.
  if (answer.oldestTs <= answer.from + answer.stepMs + (answer.to - answer.from) / 50) {
    return null;
  }
  const since = answer.oldestTs < Date.now() - 20 * 3600_000 ? new Date(answer.oldestTs).toLocaleString("en-GB") : time(answer.oldestTs);
  if (answer.store === "memory") {
    return (
      `Only the data since ${since}: this server keeps history in memory (store = memory), ${kept ?? "a few minutes"} per channel, ` +
      `and loses it on restart. A store on disk keeps more (docs/storage.md).`
    );
  }
  return `Only the data since ${since}: nothing older is kept for ${channel}${kept ? ` (${kept})` : ""}.`;
}

/** `600` → `"10 min"`, `86400` → `"24 h"`, `90` → `"90 s"`. */
function age(secs: number): string {
  if (secs >= 3600 && secs % 3600 === 0) {
    return `${num(secs / 3600)} h`;
  }
  if (secs >= 60 && secs % 60 === 0) {
    return `${num(secs / 60)} min`;
  }
  return `${num(secs)} s`;
}
