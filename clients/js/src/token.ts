import { LiveHubError, refusalKind } from "./errors.js";
import type { Transport } from "./transports/transport.js";

/** A function that fetches a token, typically from the application's own backend. */
export type TokenFunction = () => string | Promise<string>;

/** A credential: a fixed token, or a function the client calls whenever it needs a fresh one. */
export type TokenSource = string | TokenFunction;

/** Refreshes are never scheduled sooner than this after the last one (a token function that keeps returning short-lived tokens must not spin). */
const MIN_REFRESH_DELAY = 1000;

/**
 * The `exp` claim of a JWT, in milliseconds since the Unix epoch, read without verifying the
 * signature (the server verifies; the client only needs to know when to refresh). `null` for a
 * token that is not a JWT or has no numeric `exp`.
 */
export function tokenExpiry(token: string): number | null {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) {
    return null;
  }
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const text = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    const exp = (JSON.parse(text) as { exp?: unknown }).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** What the token manager needs of the hub to refresh a live connection. */
export interface TokenHost {
  /** The connected transport, if any. */
  active(): Transport | null;
  /** Hands the current token (and the current subscriptions) to `transport`. */
  apply(transport: Transport): Promise<void>;
  /** Ends `transport` if it is still the live one; the hub reconnects with the current token. */
  reconnect(transport: Transport): void;
  /** Reports a failure of the token function. */
  error(err: LiveHubError): void;
}

/**
 * The hub's credential: the current token, when to ask the token function for a new one, and the
 * proactive refresh of a live connection. Tokens are never put in errors or logs.
 *
 * A token is due for a refresh `refreshMargin` ms before its `exp`, or half-way through its
 * lifetime (as seen from when the client got it) when that comes later, so that a token shorter
 * than the margin is not refreshed in a loop.
 */
export class TokenManager {
  private source: TokenSource | undefined;
  private token: string | undefined;
  /** When the current token is due for a refresh (ms since the epoch), or null when never. */
  private dueAt: number | null = null;
  /** The server said the current token expired: the next `ensureFresh` asks for another. */
  private stale = false;
  /** Counts token changes, so that a late "token_expired" about an older token is ignored. */
  private version = 0;
  private inFlight: Promise<string | undefined> | null = null;
  /** Identifies the call in flight; `replace` drops it. */
  private ticket: object | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** The token (by `generation`) the live transport was admitted with. */
  private used = 0;

  constructor(
    source: TokenSource | undefined,
    private readonly refreshMargin: number,
    private readonly host: TokenHost,
  ) {
    this.replace(source);
  }

  /** The token to send now, if any. */
  get current(): string | undefined {
    return this.token;
  }

  /** Identifies the current token; pass it to `expired` later. */
  get generation(): number {
    return this.version;
  }

  /** Whether a fresh token can be had (the source is a function). */
  get refreshable(): boolean {
    return typeof this.source === "function";
  }

  /**
   * Replaces the source. A function is called at the next `ensureFresh`; until it answers, the
   * token in hand is still sent (requests without one would be refused for good).
   */
  private replace(source: TokenSource | undefined): void {
    this.source = source;
    this.inFlight = null;
    this.ticket = null;
    this.cancel();
    this.stale = typeof source === "function";
    if (typeof source !== "function") {
      this.store(source === "" ? undefined : source);
    }
  }

  /**
   * The server refused the token of `generation` as expired: unless the token changed since,
   * the next `ensureFresh` asks the function for another.
   */
  private expired(generation: number): void {
    if (generation === this.version) {
      this.stale = true;
    }
  }

  /**
   * Before a connection attempt: with a token function, gets a new token when there is none, the
   * current one is due, or the server said it expired. Calls the function at most once; what it
   * returns is used even if already expired (the server has the last word, and a second call
   * could loop). Throws `token_unavailable` when the function fails.
   */
  async ensureFresh(): Promise<void> {
    if (!this.refreshable) {
      return;
    }
    if (this.token === undefined || this.stale || (this.dueAt !== null && Date.now() >= this.dueAt)) {
      await this.fetch();
    }
  }

  /** Calls the token function now (one call at a time; concurrent callers share it). */
  private fetch(): Promise<string | undefined> {
    const source = this.source;
    if (typeof source !== "function") {
      return Promise.resolve(this.token);
    }
    if (!this.inFlight) {
      const ticket = {};
      this.ticket = ticket;
      const call = (async () => {
        let token: unknown;
        try {
          token = await source();
        } catch (err) {
          throw new LiveHubError("token_unavailable", `the token function failed: ${err instanceof Error ? err.message : String(err)}`);
        } finally {
          if (this.ticket === ticket) {
            this.inFlight = null;
          }
        }
        if (token !== undefined && token !== null && typeof token !== "string") {
          throw new LiveHubError("token_unavailable", `the token function returned a ${typeof token}, not a string`);
        }
        // A `replace` meanwhile wins over this answer.
        if (this.ticket === ticket) {
          this.stale = false;
          this.store(token || undefined);
        }
        return this.token;
      })();
      this.inFlight = call;
    }
    return this.inFlight;
  }

  /**
   * What a connection round does after `error` refused a transport opened with the token of
   * `generation`: `renew` (token_expired, with a function, once a round: the same transport again
   * with a fresh token), `stop` (a refusal the same credential would get again, or an expired
   * static token), `back-off` (a limit, or expired again: end the round) or `next` (not about
   * the credential: try the next transport).
   */
  verdict(error: LiveHubError, generation: number, renewedThisRound: boolean): "renew" | "stop" | "back-off" | "next" {
    switch (refusalKind(error.code)) {
      case "expired":
        this.expired(generation);
        return !this.refreshable ? "stop" : renewedThisRound ? "back-off" : "renew";
      case "permanent":
        return "stop";
      case "limited":
        return "back-off";
      default:
        return "next";
    }
  }

  /** A request made with the token of `generation` got `token_expired`: gets a fresh one (throws `token_unavailable`). */
  async renew(generation: number): Promise<void> {
    this.expired(generation);
    await this.ensureFresh();
  }

  /** A transport opened with the token of `generation` (read before the open started). */
  admitted(generation: number): void {
    this.used = generation;
  }

  /** The admitted transport is connected: refresh its token before it expires. */
  connected(): void {
    this.schedule();
  }

  /** The live transport closed with `code`: 4003 (`token_expired`) makes the next attempt ask for a fresh token. */
  disconnected(code: number): void {
    this.cancel();
    if (code === 4003) {
      this.expired(this.used);
    }
  }

  /**
   * `hub.setToken`: replaces the source and hands the new token to the live transport, if any.
   * Returns false when there is none (the next connection attempt uses the new token).
   */
  set(source: TokenSource): boolean {
    this.replace(source);
    const transport = this.host.active();
    if (!transport) {
      return false;
    }
    void (this.refreshable ? this.refresh(true) : this.reauthenticate(transport));
    return true;
  }

  /**
   * The scheduled refresh: a new token from the function, handed to the live transport (unless
   * the function returned the same one, and `always` is not set).
   */
  private async refresh(always = false): Promise<void> {
    const transport = this.host.active();
    if (!transport) {
      return;
    }
    const before = this.token;
    try {
      await this.fetch();
    } catch (err) {
      // The connection lives until the token expires; the reconnect then asks again.
      this.host.error(err instanceof LiveHubError ? err : new LiveHubError("token_unavailable", String(err)));
      return;
    }
    if (this.host.active() !== transport) {
      return;
    }
    if (this.token === before && !always) {
      this.schedule();
      return;
    }
    await this.reauthenticate(transport);
  }

  /**
   * Makes the live transport use the current token (WebSocket: `refresh`; SSE: a reopened
   * stream). When it cannot, reconnects, with a fresh token if the new one was already expired.
   */
  private async reauthenticate(transport: Transport): Promise<void> {
    const generation = this.version;
    try {
      await this.host.apply(transport);
    } catch (err) {
      if (this.host.active() === transport) {
        if (err instanceof LiveHubError && err.code === "token_expired") {
          this.expired(generation);
        }
        this.host.reconnect(transport);
      }
      return;
    }
    if (this.host.active() === transport) {
      this.used = generation;
      this.schedule();
    }
  }

  /**
   * With a token function and a token that expires, refreshes when it is due (at least a second
   * from now). Replaces any earlier schedule.
   */
  private schedule(): void {
    this.cancel();
    if (!this.refreshable || this.dueAt === null) {
      return;
    }
    const delay = Math.max(this.dueAt - Date.now(), MIN_REFRESH_DELAY);
    // setTimeout fires at once for delays past 2^31-1 ms; such a token needs no refresh soon.
    if (delay > 2_147_483_647) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, delay);
  }

  /** Stops the refresh schedule. */
  cancel(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private store(token: string | undefined): void {
    this.token = token;
    this.version++;
    const exp = token === undefined ? null : tokenExpiry(token);
    if (exp === null) {
      this.dueAt = null;
      return;
    }
    const now = Date.now();
    const margin = Math.min(this.refreshMargin, Math.max(0, (exp - now) / 2));
    this.dueAt = exp - margin;
  }
}
