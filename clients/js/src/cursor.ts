import type { Position } from "./types.js";

/**
 * Builds a resume cursor (the SSE `Last-Event-ID`, the long-poll `cursor`) from positions, in the
 * format docs/protocol.md documents: base64url of `channel offset epoch` lines, with `%`, space
 * and line feed in the channel written `%25`, `%20` and `%0A`.
 */
export function encodeCursor(positions: Iterable<[string, Position]>): string {
  const lines: string[] = [];
  for (const [channel, p] of positions) {
    const escaped = channel.replace(/[% \n]/g, (c) => (c === "%" ? "%25" : c === " " ? "%20" : "%0A"));
    lines.push(`${escaped} ${p.offset} ${p.epoch}`);
  }
  const bytes = new TextEncoder().encode(lines.join("\n"));
  let binary = "";
  for (const b of bytes) {
    binary += String.fromCharCode(b);
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Reads a cursor back into positions (the inverse of `encodeCursor`); a malformed one gives none. */
export function decodeCursor(cursor: string): Map<string, Position> {
  const out = new Map<string, Position>();
  try {
    const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    const text = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    for (const line of text.split("\n")) {
      const [channel, offset, epoch, extra] = line.split(" ");
      if (channel && offset && epoch && extra === undefined) {
        // Any `%XX` is a byte of the name's UTF-8, as the server reads it.
        out.set(decodeURIComponent(channel), { offset: Number(offset), epoch });
      }
    }
  } catch {
    // Not a cursor of ours: nothing to report.
  }
  return out;
}

/** MQTT-style matching of a channel against a filter (`+` one level, final `#` the rest). */
export function matches(filter: string, channel: string): boolean {
  if (filter === channel) {
    return true;
  }
  if (channel.startsWith("$") && !filter.startsWith("$")) {
    return false;
  }
  const want = filter.split("/");
  const have = channel.split("/");
  for (let i = 0; i < want.length; i++) {
    if (want[i] === "#") {
      return true;
    }
    if (i >= have.length || (want[i] !== "+" && want[i] !== have[i])) {
      return false;
    }
  }
  return want.length === have.length;
}

/** Whether a filter contains a wildcard level. */
export function isPattern(filter: string): boolean {
  return filter.split("/").some((level) => level === "+" || level === "#");
}
