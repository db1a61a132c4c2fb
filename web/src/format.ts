/** Number, byte, rate and time formatting. A fixed locale keeps the numbers the same for everyone. */

const LOCALE = "en-US";
const formatters = new Map<string, Intl.NumberFormat>();

function formatter(min: number, max: number): Intl.NumberFormat {
  const key = `${min}:${max}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: min, maximumFractionDigits: max });
    formatters.set(key, f);
  }
  return f;
}

/** `1234.5` → `"1,234.50"` with exactly `digits` decimals. */
export function num(value: number | null | undefined, digits = 0): string {
  return isFiniteNumber(value) ? formatter(digits, digits).format(value) : "–";
}

/** `12.345` → `"12.3 %"`. */
export function percent(value: number | null | undefined, digits = 1): string {
  return isFiniteNumber(value) ? `${num(value, digits)} %` : "–";
}

/** `+1.52` / `−0.81`: a signed number with a real minus sign. */
export function signed(value: number | null | undefined, digits = 2): string {
  if (!isFiniteNumber(value)) {
    return "–";
  }
  const text = num(Math.abs(value), digits);
  return value > 0 ? `+${text}` : value < 0 ? `−${text}` : text;
}

/**
 * A delay in seconds as the transit list shows it: `"on time"`, `"+42 s"` under a minute,
 * `"+3 min"` from then on. Rounded first, so that no delay reads `"+0 s"`, `"+0 min"` or `"+60 s"`.
 */
export function lateness(secs: number): string {
  const whole = Math.round(secs);
  if (!(whole > 0)) {
    return "on time";
  }
  return whole < 60 ? `+${num(whole, 0)} s` : `+${num(Math.round(whole / 60), 0)} min`;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `8321499136` → `"7.75 GiB"`. */
export function bytes(value: number | null | undefined): string {
  if (!isFiniteNumber(value)) {
    return "–";
  }
  let v = Math.abs(value);
  let unit = 0;
  while (v >= 1024 && unit < BYTE_UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  const digits = unit === 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
  return `${value < 0 ? "−" : ""}${num(v, digits)} ${BYTE_UNITS[unit]}`;
}

/** Bytes for an axis tick: at most one decimal, none when whole (`"1.5 KiB"`, `"512 B"`). */
export function bytesShort(value: number): string {
  let v = Math.abs(value);
  let unit = 0;
  while (v >= 1024 && unit < BYTE_UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  const rounded = Math.round(v * 10) / 10;
  return `${value < 0 ? "−" : ""}${num(rounded, Number.isInteger(rounded) ? 0 : 1)} ${BYTE_UNITS[unit]}`;
}

/** Bytes per second: `"1.2 MiB/s"`. */
export function rate(value: number | null | undefined): string {
  return isFiniteNumber(value) ? `${bytes(value)}/s` : "–";
}

/** `1843200` → `"1.84M"`. */
export function compact(value: number | null | undefined): string {
  if (!isFiniteNumber(value)) {
    return "–";
  }
  const abs = Math.abs(value);
  for (const [size, suffix] of [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]] as const) {
    if (abs >= size) {
      const v = value / size;
      return `${num(v, Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0)}${suffix}`;
    }
  }
  return num(value, 0);
}

/** `90061` → `"1d 1h 1m"`; under a minute, seconds. */
export function duration(secs: number | null | undefined): string {
  if (!isFiniteNumber(secs)) {
    return "–";
  }
  const s = Math.max(0, Math.floor(secs));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) {
    return `${d}d ${h}h ${m}m`;
  }
  if (h > 0) {
    return `${h}h ${m}m`;
  }
  return m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

const clock = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

/** Milliseconds since the epoch → local `"14:03:27"`. */
export function time(ts: number | null | undefined): string {
  return isFiniteNumber(ts) ? clock.format(new Date(ts)) : "–";
}

const hoursMinutes = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", hour12: false });

/** Milliseconds since the epoch → local `"14:03"`, for a time axis over hours. */
export function clockTime(ts: number | null | undefined): string {
  return isFiniteNumber(ts) ? hoursMinutes.format(new Date(ts)) : "–";
}

/** `"on_route"` → `"on route"`. */
export function label(value: string): string {
  return value.replace(/_/g, " ");
}

export function isFiniteNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}
