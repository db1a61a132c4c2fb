import { isPattern } from "../cursor.js";
import { LiveHubError, closeFor, httpError } from "../errors.js";
import type { Position } from "../types.js";
import { HttpTransport, authHeaders, channelPath, pathless, toMessage, type Wanted } from "./transport.js";

/**
 * Short polling over the REST API: every `pollInterval` ms, each channel's history after the last
 * position. Exact channels only: a pattern gets an `unsupported` error. Each channel is its own
 * request, so a channel the token may not read gets its own `forbidden` error and the others go on.
 */
export class PollingTransport extends HttpTransport {
  readonly name = "polling" as const;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private wanted: Wanted[] = [];
  private positions = new Map<string, Position>();

  protected async start(wanted: Wanted[], positions: Map<string, Position>): Promise<void> {
    const generation = ++this.generation;
    this.stop();
    this.wanted = [];
    for (const w of wanted) {
      if (isPattern(w.filter)) {
        this.ctx.events.subscribeError(
          w.filter,
          new LiveHubError("unsupported", "wildcard subscriptions need a streaming transport"),
        );
      } else if (pathless(w.filter)) {
        this.ctx.events.subscribeError(
          w.filter,
          new LiveHubError("unsupported", `the channel ${JSON.stringify(w.filter)} cannot be named in a URL path`),
        );
      } else {
        this.wanted.push(w);
      }
    }
    // The first requests answer whether the server serves this transport at all (404
    // `transport_disabled`) and accepts the credential. With no channel to read, ask the channel
    // list, which says so too (a token that is not an admin's gets a 403 `forbidden` that only
    // means the list is not for it: polling is served).
    if (this.wanted.length === 0) {
      const probe = await this.get("").catch((err: unknown) => {
        throw new LiveHubError("transport_failed", `polling failed: ${err instanceof LiveHubError ? err.message : String(err)}`);
      });
      if (!probe.ok) {
        const error = await httpError(probe);
        if (error.code !== "forbidden") {
          throw error;
        }
      }
    }
    for (const w of [...this.wanted]) {
      await this.refusable(w.filter, () => this.begin(w, positions.get(w.filter)));
    }
    this.schedule(generation);
  }

  protected stop(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private schedule(generation: number): void {
    this.timer = setTimeout(() => {
      void this.round(generation);
    }, this.ctx.pollInterval);
  }

  private async round(generation: number): Promise<void> {
    try {
      for (const w of [...this.wanted]) {
        await this.refusable(w.filter, () => this.catchUp(w.filter));
      }
    } catch (err) {
      const error = err instanceof LiveHubError ? err : new LiveHubError("disconnected", String(err));
      const { code, reason } = closeFor(error, 1006);
      this.lost(generation, code, reason);
      return;
    }
    if (this.current(generation)) {
      this.schedule(generation);
    }
  }

  /** Runs `f` for `channel`; a `forbidden` answer drops the channel with an error instead of failing. */
  private async refusable(channel: string, f: () => Promise<unknown>): Promise<void> {
    try {
      await f();
    } catch (err) {
      if (!(err instanceof LiveHubError) || err.code !== "forbidden") {
        throw err;
      }
      this.wanted = this.wanted.filter((w) => w.filter !== channel);
      this.ctx.events.subscribeError(channel, err);
    }
  }

  /** Starts a channel: recovers from `since` if given, else takes its position (and latest value). */
  private async begin(w: Wanted, since: Position | undefined): Promise<void> {
    if (since) {
      this.positions.set(w.filter, since);
      const recovered = await this.catchUp(w.filter, true);
      if (recovered) {
        return;
      }
    }
    await this.restart(w.filter, w.latest || since !== undefined);
  }

  /** Reads history after the channel's position; false when history cannot bridge the gap. */
  private async catchUp(channel: string, reportRecovered = false): Promise<boolean> {
    const position = this.positions.get(channel);
    if (!position) {
      return false;
    }
    const query = `since=${position.offset}&epoch=${encodeURIComponent(position.epoch)}&limit=1000&client=${encodeURIComponent(this.ctx.clientId)}`;
    const response = await this.get(`${channelPath(channel)}/history?${query}`);
    if (response.status === 409) {
      await this.restart(channel, true);
      return false;
    }
    if (!response.ok) {
      throw await httpError(response);
    }
    const body = (await response.json()) as { position: Position; oldest: number; publications: Record<string, unknown>[] };
    if (body.oldest > position.offset + 1 && body.position.offset > position.offset) {
      await this.restart(channel, true);
      return false;
    }
    if (reportRecovered) {
      this.ctx.events.subscribed({ channel, position: body.position, recovered: true });
    }
    for (const p of body.publications) {
      const m = toMessage(p);
      this.positions.set(channel, { offset: m.offset, epoch: m.epoch });
      this.ctx.events.message(m);
    }
    return true;
  }

  /** Takes the channel's current position (`recovered: false`), with its latest value if asked. */
  private async restart(channel: string, latest: boolean): Promise<void> {
    const response = await this.get(channelPath(channel));
    if (!response.ok) {
      throw await httpError(response);
    }
    const body = (await response.json()) as { position: Position; latest: Record<string, unknown> | null };
    this.positions.set(channel, body.position);
    this.ctx.events.subscribed({ channel, position: body.position, recovered: false });
    if (latest && body.latest) {
      this.ctx.events.message(toMessage(body.latest));
    }
  }

  private get(pathAndQuery: string): Promise<Response> {
    const url = `${this.ctx.baseUrl}/api/channels${pathAndQuery ? `/${pathAndQuery}` : ""}`;
    return this.ctx.fetch(url, { headers: authHeaders(this.ctx) }).catch((err: unknown) => {
      throw new LiveHubError("disconnected", `poll failed: ${String(err)}`);
    });
  }
}
