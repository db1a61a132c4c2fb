import { decodeCursor, encodeCursor, matches } from "../cursor.js";
import { LiveHubError, closeFor, httpError } from "../errors.js";
import type { Position } from "../types.js";
import { HttpTransport, authHeaders, channelParam, reportChannels, resumable, toMessage, type Wanted } from "./transport.js";

/** Long polling: `GET /poll` in a loop, each answer carrying the cursor for the next one. */
export class LongPollTransport extends HttpTransport {
  readonly name = "long-polling" as const;
  private abort: AbortController | null = null;

  protected async start(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    const generation = ++this.generation;
    this.abort?.abort();
    const resume = resumable(wanted, positions, matches);
    // The first poll does not wait, so a refusal is found at once.
    const next = await this.poll(wanted, encodeCursor(resume), 0, resume);
    void this.loop(wanted, next, generation);
  }

  protected stop(): void {
    this.abort?.abort();
  }

  private async loop(wanted: Wanted[], cursor: string, generation: number): Promise<void> {
    while (this.current(generation)) {
      try {
        cursor = await this.poll(wanted, cursor, this.ctx.longPollTimeout, null);
      } catch (err) {
        // A network failure is worth a reconnect; so are an expired token (with a fresh one) and a
        // limit (after a back-off). Any other refusal is final.
        const error = err instanceof LiveHubError ? err : new LiveHubError("disconnected", String(err));
        const { code, reason } = closeFor(error, error.code === "disconnected" ? 1006 : 4500);
        this.lost(generation, code, reason);
        return;
      }
    }
  }

  /**
   * One poll; returns the next cursor. `first` (the positions resumed from) marks the poll that
   * opens the transport, which reports every channel's subscribe result.
   */
  private async poll(wanted: Wanted[], cursor: string, timeout: number, first: Map<string, Position> | null): Promise<string> {
    const params = new URLSearchParams();
    for (const w of wanted) {
      params.append("channel", channelParam(w.filter));
    }
    if (first && wanted.some((w) => w.latest)) {
      params.set("latest", "true");
    }
    if (cursor) {
      params.set("cursor", cursor);
    }
    params.set("timeout", String(timeout));
    params.set("client", this.ctx.clientId);
    const abort = new AbortController();
    this.abort = abort;
    let response: Response;
    try {
      response = await this.ctx.fetch(`${this.ctx.baseUrl}/poll?${params}`, { headers: authHeaders(this.ctx), signal: abort.signal });
    } catch (err) {
      throw new LiveHubError("disconnected", `poll failed: ${String(err)}`);
    }
    if (response.status === 204) {
      const next = response.headers.get("livehub-cursor") ?? cursor;
      if (first) {
        // Nothing followed the cursor: every resumed channel is recovered, the others start here.
        for (const [channel, position] of decodeCursor(next)) {
          this.ctx.events.subscribed({ channel, position, recovered: first.has(channel) });
        }
      }
      return next;
    }
    if (!response.ok) {
      throw await httpError(response);
    }
    const body = (await response.json()) as { messages: Record<string, unknown>[]; cursor: string; channels: unknown };
    if (first) {
      reportChannels(this.ctx.events, body.channels);
    } else {
      // Later answers only matter when history could not bridge the gap since the last poll.
      const lost = Object.fromEntries(
        Object.entries((body.channels ?? {}) as Record<string, { recovered?: boolean }>).filter(
          ([, e]) => e.recovered === false,
        ),
      );
      reportChannels(this.ctx.events, lost);
    }
    for (const m of body.messages) {
      this.ctx.events.message(toMessage(m));
    }
    return body.cursor;
  }
}
