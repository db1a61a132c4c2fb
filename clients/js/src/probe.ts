import { LiveHubError, httpError } from "./errors.js";

/** How long a probe may take before the server counts as unreachable. */
export const PROBE_TIMEOUT_MS = 2000;

/**
 * Whether the server answers `GET /health` within `PROBE_TIMEOUT_MS` (or until `abort`): a cheap
 * request that tells an unreachable server from one that is back, before a full connection
 * round. Any answer below 500 counts (a proxy may not route `/health`); browsers send it
 * `no-cors`, since only reachability matters and a cross-origin page may not be allowed to read
 * the answer.
 */
export async function reachable(fetchImpl: typeof fetch, baseUrl: string, abort: AbortController): Promise<boolean> {
  const timer = setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
  try {
    const browser = typeof (globalThis as { document?: unknown }).document !== "undefined";
    const init: RequestInit = browser ? { signal: abort.signal, mode: "no-cors" } : { signal: abort.signal };
    const response = await fetchImpl(`${baseUrl}/health`, init);
    void response.body?.cancel().catch(() => {});
    return response.type === "opaque" || response.status < 500;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `transport_disabled` when a plain `GET /ws` says the server switched WebSocket off, else
 * `null`. A refused handshake tells a browser nothing about why; this GET does.
 */
export async function websocketDisabled(fetchImpl: typeof fetch, baseUrl: string): Promise<LiveHubError | null> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
  try {
    const response = await fetchImpl(`${baseUrl}/ws`, { signal: abort.signal });
    if (response.status !== 404) {
      void response.body?.cancel().catch(() => {});
      return null;
    }
    const error = await httpError(response);
    return error.code === "transport_disabled" ? error : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
