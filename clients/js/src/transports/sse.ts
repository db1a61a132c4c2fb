import { encodeCursor, matches } from "../cursor.js";
import { LiveHubError, httpError } from "../errors.js";
import type { Position } from "../types.js";
import { HttpTransport, authHeaders, channelParam, reportChannels, resumable, toMessage, type Wanted } from "./transport.js";

/**
 * Server-Sent Events read with `fetch`, so that it works the same in browsers and Node and can
 * resume from positions gathered on any transport (the cursor goes in `last_event_id`).
 * Publishing goes over `POST /api/publish`. Changing subscriptions reopens the stream from the
 * current positions, which loses nothing; so does a new token (`reauthenticate`).
 */
export class SseTransport extends HttpTransport {
  readonly name = "sse" as const;
  private abort: AbortController | null = null;

  protected async start(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    const generation = ++this.generation;
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    const params = new URLSearchParams();
    for (const w of wanted) {
      params.append("channel", channelParam(w.filter));
    }
    if (wanted.some((w) => w.latest)) {
      params.set("latest", "true");
    }
    const resume = resumable(wanted, positions, matches);
    if (resume.size > 0) {
      params.set("last_event_id", encodeCursor(resume));
    }
    let response: Response;
    try {
      response = await this.ctx.fetch(`${this.ctx.baseUrl}/sse?${params}`, {
        headers: authHeaders(this.ctx, { accept: "text/event-stream" }),
        signal: abort.signal,
      });
    } catch (err) {
      throw new LiveHubError("transport_failed", `SSE request failed: ${String(err)}`);
    }
    if (!response.ok || !response.body) {
      throw await httpError(response);
    }
    const reader = response.body.getReader();
    await new Promise<void>((resolve, reject) => {
      void this.read(reader, generation, resolve, reject);
    });
  }

  override reauthenticate(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    // The stream holds the token it was opened with until it ends: reopen it with the new one.
    return this.change(wanted, positions);
  }

  protected stop(): void {
    this.abort?.abort();
  }

  private async read(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    generation: number,
    resolve: () => void,
    reject: (err: LiveHubError) => void,
  ): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    let connected = false;
    let ended: { code: number; reason: string } = { code: 1006, reason: "stream ended" };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEvent(block);
          if (!event) {
            continue;
          }
          const data = safeJson(event.data);
          if (event.name === "connected" && data?.["type"] === "connected") {
            connected = true;
            reportChannels(this.ctx.events, data["channels"]);
            resolve();
          } else if (event.name === "disconnect" && data?.["type"] === "disconnect") {
            ended = { code: Number(data["code"]), reason: String(data["reason"]) };
          } else if (data?.["type"] === "message") {
            this.ctx.events.message(toMessage(data));
          }
        }
      }
    } catch (err) {
      ended = { code: 1006, reason: String(err) };
    }
    if (!connected) {
      reject(new LiveHubError("transport_failed", `SSE stream ended before it connected: ${ended.reason}`));
      return;
    }
    // A stream replaced by `update` or closed by the hub ends silently.
    this.lost(generation, ended.code, ended.reason);
  }
}

function parseEvent(block: string): { name: string; data: string } | null {
  let name = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":") || line === "") {
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") {
      name = value;
    } else if (field === "data") {
      data.push(value);
    }
  }
  return data.length > 0 ? { name, data: data.join("\n") } : null;
}

function safeJson(text: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === "object" ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
