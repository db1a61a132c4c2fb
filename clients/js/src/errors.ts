/**
 * An error from the server or the client, with a stable code. Server codes are listed in
 * docs/protocol.md; the client adds `disconnected` (the transport went away before an answer),
 * `not_acknowledged` (a publish got no answer even after its one retry), `closed` (the hub was
 * closed), `transport_failed` (a transport could not open) and `unsupported`.
 */
export class LiveHubError extends Error {
  readonly code: string;
  /** The close code, when the error is a disconnect. */
  readonly closeCode: number | undefined;

  constructor(code: string, message: string, closeCode?: number) {
    super(message);
    this.name = "LiveHubError";
    this.code = code;
    this.closeCode = closeCode;
  }
}

/** Reads `{"error":{"code","message"}}` from a failed HTTP response. */
export async function httpError(response: Response): Promise<LiveHubError> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) {
      return new LiveHubError(body.error.code, body.error.message ?? response.statusText);
    }
  } catch {
    // Not JSON: fall through to a generic error.
  }
  return new LiveHubError(`http_${response.status}`, `HTTP ${response.status} ${response.statusText}`);
}
