import { Emitter } from "./emitter.js";
import type { LiveHubError } from "./errors.js";
import type { Message, Position, SubscribeOptions, SubscribedInfo } from "./types.js";

/** Events of a subscription. */
export interface SubscriptionEvents extends Record<string, unknown> {
  /** One publication (not emitted for buffered subscriptions). */
  message: Message;
  /** Publications gathered over `buffer` ms (buffered subscriptions only). */
  batch: Message[];
  /** On every (re)subscribe. */
  subscribed: SubscribedInfo;
  /** The server could not recover what was missed: reload state from `latest` or history. */
  unrecovered: { channel: string; position?: Position };
  /** The server refused the subscription (for example `invalid_channel`). */
  error: LiveHubError;
}

/** One channel or pattern the application listens to; from `hub.subscribe`. */
export class Subscription extends Emitter<SubscriptionEvents> {
  private buffered: Message[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private active = true;

  /** @internal */
  constructor(
    readonly channel: string,
    readonly options: SubscribeOptions,
    private readonly remove: (sub: Subscription) => void,
  ) {
    super();
    if (options.buffer && options.buffer > 0) {
      this.timer = setInterval(() => this.flush(), options.buffer);
    }
  }

  /** Stops listening; the hub unsubscribes on the server when nobody else listens to the channel. */
  unsubscribe(): void {
    if (!this.active) {
      return;
    }
    this.active = false;
    this.flush();
    this.stop();
    this.remove(this);
    this.removeAllListeners();
  }

  /** @internal */
  deliver(message: Message): void {
    if (this.timer) {
      this.buffered.push(message);
    } else {
      this.emit("message", message);
    }
  }

  /** @internal */
  notify<K extends "subscribed" | "unrecovered" | "error">(event: K, payload: SubscriptionEvents[K]): void {
    this.emit(event, payload);
  }

  /** @internal Releases the timer when the hub closes. */
  stop(): void {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private flush(): void {
    if (this.buffered.length > 0) {
      const batch = this.buffered;
      this.buffered = [];
      this.emit("batch", batch);
    }
  }
}
