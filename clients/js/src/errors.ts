/**
 * An error from the server or the client, with a stable code. Server codes are listed in
 * docs/protocol.md (access control adds `unauthorized`, `token_expired`, `token_not_yet_valid`,
 * `forbidden`, `origin_not_allowed`, `rate_limited` and `too_many_connections`); the client adds
 * `disconnected` (the transport went away before an answer), `not_acknowledged` (a publish got no
 * answer even after its one retry), `closed` (the hub was closed), `transport_failed` (a
 * transport could not open), `token_unavailable` (the token function failed) and `unsupported`.
 */
export class LiveHubError extends Error {
  readonly code: string;
  /** The close code, when the error is a disconnect. */
  readonly closeCode: number | undefined;
  /** The HTTP status, when the error is an HTTP answer. */
  readonly status: number | undefined;
  /** Seconds to wait before trying again, from a `Retry-After` header (429 answers). */
  readonly retryAfter: number | undefined;

  constructor(code: string, message: string, closeCode?: number, http?: { status?: number; retryAfter?: number }) {
    super(message);
    this.name = "LiveHubError";
    this.code = code;
    this.closeCode = closeCode;
    this.status = http?.status;
    this.retryAfter = http?.retryAfter;
  }
}

/** Reads `{"error":{"code","message"}}` from a failed HTTP response. */
export async function httpError(response: Response): Promise<LiveHubError> {
  const retry = Number(response.headers.get("retry-after"));
  const http = { status: response.status, ...(retry > 0 ? { retryAfter: retry } : {}) };
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) {
      return new LiveHubError(body.error.code, body.error.message ?? response.statusText, undefined, http);
    }
  } catch {
    // Not JSON: fall through to a generic error.
  }
  return new LiveHubError(`http_${response.status}`, `HTTP ${response.status} ${response.statusText}`, undefined, http);
}

/** Refusals that the same credential will get again: no retry until the application changes something. */
const PERMANENT = new Set(["unauthorized", "forbidden", "origin_not_allowed", "token_not_yet_valid"]);
/** Refusals for a limit: retry after a back-off. */
const LIMITED = new Set(["rate_limited", "too_many_connections"]);

/** How the client reacts to an access-control refusal: `expired` (fresh token, retry), `permanent`, `limited` (back off), or `other`. */
export function refusalKind(code: string): "expired" | "permanent" | "limited" | "other" {
  if (code === "token_expired") {
    return "expired";
  }
  if (PERMANENT.has(code)) {
    return "permanent";
  }
  return LIMITED.has(code) ? "limited" : "other";
}

/**
 * The WebSocket close code equivalent to an error that ended an HTTP transport: 4003 for an
 * expired token, 4029 for a limit, 1008 (with the code as reason) for a permanent refusal, and
 * `otherwise` for the rest.
 */
export function closeFor(error: LiveHubError, otherwise: number): { code: number; reason: string } {
  switch (refusalKind(error.code)) {
    case "expired":
      return { code: 4003, reason: error.code };
    case "limited":
      return { code: 4029, reason: error.code };
    case "permanent":
      return { code: 1008, reason: error.code };
    default:
      return { code: otherwise, reason: error.message };
  }
}
