/** Preferences kept in localStorage; storage can be unavailable (private modes), so every access is guarded. */

const PREFIX = "livehub.dashboard.";

/** The stored JSON value of `key`, or `fallback` when absent or unreadable. */
export function load<T>(key: string, fallback: T, valid: (value: unknown) => value is T): T {
  try {
    const raw = localStorage.getItem(PREFIX + key);
    if (raw !== null) {
      const value: unknown = JSON.parse(raw);
      if (valid(value)) {
        return value;
      }
    }
  } catch {
    // Unreadable storage or a corrupt value: the default is the right answer either way.
  }
  return fallback;
}

/** Stores `value` under `key`; losing a preference is harmless, so failures are ignored. */
export function save(key: string, value: unknown): void {
  try {
    localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the choice only lasts for this page.
  }
}

export function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

export function isString(value: unknown): value is string {
  return typeof value === "string";
}
