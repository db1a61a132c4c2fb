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
 * it opens for `cooldown` ms, then lets one round through (half-open); a success closes it.
 */
export class CircuitBreaker {
  private failuresInARow = 0;
  private openUntil = 0;

  constructor(
    private readonly failures: number,
    private readonly cooldown: number,
  ) {}

  /** Records a failed round; returns true when this opened the breaker. */
  failure(now: number): boolean {
    this.failuresInARow++;
    if (this.failuresInARow >= this.failures) {
      const wasOpen = this.openUntil > 0;
      this.openUntil = now + this.cooldown;
      return !wasOpen;
    }
    return false;
  }

  /** Records a success; returns true when this closed an open breaker. */
  success(): boolean {
    const wasOpen = this.openUntil > 0;
    this.failuresInARow = 0;
    this.openUntil = 0;
    return wasOpen;
  }

  /** Milliseconds to wait before the next round is allowed (0 when closed or half-open). */
  wait(now: number): number {
    return Math.max(0, this.openUntil - now);
  }

  get isOpen(): boolean {
    return this.openUntil > 0;
  }
}
