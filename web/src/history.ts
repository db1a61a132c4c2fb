/** Channel history over REST (`GET /api/channels/{channel}/history?limit=N`), to open charts already filled. */

import type { Message } from "../../clients/js/src/index.js";
import { authHeaders } from "./credentials.js";

/** The most history the server hands out in one request. */
const MAX_LIMIT = 1000;

interface HistoryAnswer {
  publications?: Message[];
}

/**
 * The newest `limit` publications of `channel`, oldest first. An unreachable server or an unknown
 * channel gives an empty list: history only decorates what the live subscription delivers.
 */
export async function fetchHistory(channel: string, limit: number): Promise<Message[]> {
  const path = channel.split("/").map(encodeURIComponent).join("/");
  const n = Math.max(1, Math.min(MAX_LIMIT, Math.floor(limit)));
  try {
    const response = await fetch(`${location.origin}/api/channels/${path}/history?limit=${n}`, {
      headers: { accept: "application/json", ...authHeaders() },
      cache: "no-store",
    });
    if (!response.ok) {
      return [];
    }
    const body = (await response.json()) as HistoryAnswer;
    return Array.isArray(body.publications) ? body.publications : [];
  } catch {
    return [];
  }
}
