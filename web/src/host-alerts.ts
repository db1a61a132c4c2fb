/**
 * Alerts on the host's real metrics (`metrics/system`): a rule fires when its value stays at or
 * above its threshold for `samples` samples in a row, says so once, and says when it is back to
 * normal. A rule that fired stays quiet for `COOLDOWN_MS` afterwards, so a value that hovers
 * around its threshold does not flood the page. Time is the samples' own `ts`, so the rules give
 * the same answers for live data and for history.
 */

import type { SystemMetrics } from "./pages/system-cards.js";

/** After a rule fired, it does not fire again for this long (ms), even if it cleared in between. */
export const COOLDOWN_MS = 5 * 60_000;

/**
 * A value must fall this many points below the threshold to count as back to normal: a CPU at
 * 89.9 % after an alert at 90 % is not a recovery.
 */
export const HYSTERESIS = 5;

export interface HostRule {
  id: string;
  /** What is measured, for the alert's text. */
  label: string;
  /** In percent. */
  threshold: number;
  /** Samples in a row at or above the threshold before it fires (one a second by default). */
  samples: number;
  /** The value in percent, or `null` when the host does not report it. */
  value(m: SystemMetrics): number | null;
}

function finite(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The rules: CPU and memory sustained, swap in real use, a full disk, and load per core. */
export const HOST_RULES: HostRule[] = [
  { id: "cpu", label: "CPU", threshold: 90, samples: 10, value: (m) => finite(m.cpu?.total) },
  { id: "memory", label: "Memory", threshold: 90, samples: 5, value: (m) => finite(m.memory?.percent) },
  { id: "swap", label: "Swap", threshold: 50, samples: 5, value: (m) => (m.swap?.total ? finite(m.swap.percent) : null) },
  {
    id: "disk",
    label: "Disk",
    threshold: 90,
    samples: 1,
    value: (m) => (Array.isArray(m.disks) ? m.disks.reduce<number | null>((max, d) => Math.max(max ?? 0, finite(d.percent) ?? 0), null) : null),
  },
  {
    id: "load",
    label: "Load per core",
    threshold: 150,
    samples: 10,
    value: (m) => {
      const cores = m.cpu?.cores?.length ?? 0;
      const load = Array.isArray(m.load) ? finite(m.load[0]) : null;
      return cores > 0 && load !== null ? (load / cores) * 100 : null;
    },
  },
];

/** What a sample changed: a rule fired (`firing`) or is back to normal (`resolved`). */
export interface HostAlert {
  rule: string;
  state: "firing" | "resolved";
  text: string;
  ts: number;
}

interface RuleState {
  above: number;
  firing: boolean;
  /** When it last fired (sample time), or -Infinity. */
  firedAt: number;
}

export class HostAlerts {
  private readonly states = new Map<string, RuleState>();
  /** The newest sample seen: older ones (history arriving after live data) are ignored. */
  private lastTs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly rules: HostRule[] = HOST_RULES,
    private readonly cooldownMs = COOLDOWN_MS,
  ) {}

  /** Feeds one sample; returns the alerts it raised or resolved. */
  feed(m: SystemMetrics): HostAlert[] {
    if (m.ts <= this.lastTs) {
      return [];
    }
    this.lastTs = m.ts;
    const out: HostAlert[] = [];
    for (const rule of this.rules) {
      const state = this.states.get(rule.id) ?? { above: 0, firing: false, firedAt: Number.NEGATIVE_INFINITY };
      this.states.set(rule.id, state);
      const v = rule.value(m);
      if (v === null) {
        continue;
      }
      if (v >= rule.threshold) {
        state.above++;
        if (!state.firing && state.above >= rule.samples && m.ts - state.firedAt >= this.cooldownMs) {
          state.firing = true;
          state.firedAt = m.ts;
          const held = rule.samples > 1 ? ` for ${rule.samples} samples` : "";
          out.push({ rule: rule.id, state: "firing", ts: m.ts, text: `${rule.label} at ${Math.round(v)} %${held} (threshold ${rule.threshold} %)` });
        }
      } else if (!state.firing) {
        // A sample under the threshold ends the run: the samples must be in a row.
        state.above = 0;
      } else if (v < rule.threshold - HYSTERESIS) {
        state.above = 0;
        state.firing = false;
        out.push({ rule: rule.id, state: "resolved", ts: m.ts, text: `${rule.label} back to ${Math.round(v)} %` });
      }
    }
    return out;
  }
}
