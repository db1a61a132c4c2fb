/** Exponential back-off with jitter, reset after a stable connection. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly base: number,
    private readonly cap: number,
    private readonly stableAfter: number,
  ) {}

  /** The next delay: `min(cap, base * 2^n)`, scaled by a random factor in [0.5, 1). */
  next(): number {
    const ceiling = Math.min(this.cap, this.base * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(ceiling * (0.5 + Math.random() * 0.5));
  }

  /** Called when a connection ends after lasting `lasted` ms: a stable one resets the back-off. */
  connectionEnded(lasted: number): void {
    if (lasted >= this.stableAfter) {
      this.attempt = 0;
    }
  }

  get attempts(): number {
    return this.attempt;
  }
}

/**
 * Stops hammering a server that keeps failing: after `failures` failed connection rounds in a row
 * it opens for a jittered time that starts at `base` ms and doubles, up to `cap` ms, each time it
 * opens again without a success in between; then it lets one round through (half-open). A success
 * closes it and starts the open time at `base` again.
 *
 * The open time is short and bounded on purpose: a server restarted in 15 s should see its
 * clients back within seconds, and the jitter spreads their return so they do not all arrive at
 * once.
 */
export class CircuitBreaker {
  private failuresInARow = 0;
  private openUntil = 0;
  /** Times it opened since the last success: the exponent of the open time. */
  private opened = 0;

  constructor(
    private readonly failures: number,
    private readonly base: number,
    private readonly cap: number,
  ) {}

  /** Records a failed round; returns true when this opened a closed breaker. */
  failure(now: number): boolean {
    this.failuresInARow++;
    if (this.failuresInARow >= this.failures) {
      const wasOpen = this.openUntil > 0;
      this.openUntil = now + this.openTime();
      this.opened++;
      return !wasOpen;
    }
    return false;
  }

  /** The next open time: `min(cap, base * 2^n)` scaled by a random factor in [0.5, 1). */
  private openTime(): number {
    const ceiling = Math.min(this.cap, this.base * 2 ** Math.min(this.opened, 30));
    return Math.round(ceiling * (0.5 + Math.random() * 0.5));
  }

  /** Records a success; returns true when this closed an open breaker. */
  success(): boolean {
    const wasOpen = this.openUntil > 0;
    this.failuresInARow = 0;
    this.openUntil = 0;
    this.opened = 0;
    return wasOpen;
  }

  /** Ends the current open time now (the server answers again, or the application asked): the next round goes through. */
  halfOpen(now: number): void {
    if (this.openUntil > now) {
      this.openUntil = now;
    }
  }

  /** Milliseconds to wait before the next round is allowed (0 when closed or half-open). */
  wait(now: number): number {
    return Math.max(0, this.openUntil - now);
  }

  get isOpen(): boolean {
    return this.openUntil > 0;
  }
}
