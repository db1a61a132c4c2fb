// Compiled by test/types.test.mjs with `tsc --strict`: the README's usage must type-check as
// written, with no cast. It is never run.
import WebSocket from "ws";
import { LiveHub, type HubStatus, type Message, type SubscribedInfo } from "../../dist/index.js";

interface Tick {
  symbol: string;
  price: number;
}

const hub = new LiveHub("http://localhost:8080", { WebSocket });
const sub = hub.subscribe<Tick>("stocks/AAPL", { latest: true });
sub.on("message", (m: Message<Tick>) => {
  const price: number = m.data.price;
  const symbol: string = m.data.symbol;
  console.log(symbol, price.toFixed(2));
});
sub.on("batch", (ms) => ms.map((m) => m.data.price));
sub.on("subscribed", (info: SubscribedInfo) => {
  const recovery: "not-needed" | "recovered" | "unrecovered" = info.recovery;
  console.log(recovery);
});
hub.on("status", (s: HubStatus) => console.log(s.state, s.retryAt, s.staleSince));
hub.on("fallback", (f) => console.log(f.from, f.reason));
hub.retryNow();

// Without a type argument, data is unknown.
hub.subscribe("x").on("message", (m) => {
  // @ts-expect-error: unknown has no property price
  console.log(m.data.price);
});
