import { Emitter } from "./emitter.js";
import type { LiveHubError } from "./errors.js";
import type { Message, Position, SubscribeOptions, SubscribedInfo } from "./types.js";

/** Events of a subscription; `T` is the type of the publications' `data`. */
export interface SubscriptionEvents<T = unknown> extends Record<string, unknown> {
  /** One publication (not emitted for buffered subscriptions). */
  message: Message<T>;
  /** Publications gathered over `buffer` ms (buffered subscriptions only). */
  batch: Message<T>[];
  /** On every (re)subscribe. */
  subscribed: SubscribedInfo;
  /** The server could not recover what was missed: reload state from `latest` or history. */
  unrecovered: { channel: string; position?: Position };
  /** The server refused the subscription (for example `invalid_channel`). */
  error: LiveHubError;
}

/**
 * One channel or pattern the application listens to; from `hub.subscribe<T>()`. `T` is what the
 * application says the channel carries: the client does not check it.
 */
export class Subscription<T = unknown> extends Emitter<SubscriptionEvents<T>> {
  private buffered: Message<T>[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private active = true;

  /** @internal */
  constructor(
    readonly channel: string,
    readonly options: SubscribeOptions,
    private readonly remove: (sub: Subscription<T>) => void,
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
    const typed = message as Message<T>;
    if (this.timer) {
      this.buffered.push(typed);
    } else {
      this.emit("message", typed);
    }
  }

  /** @internal */
  notify<K extends "subscribed" | "unrecovered" | "error">(event: K, payload: SubscriptionEvents<T>[K]): void {
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
