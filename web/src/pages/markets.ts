/** Markets: the simulated stock ticker (`stocks/{SYMBOL}`), one subscription per picked symbol. */

import type { Message } from "../../../clients/js/src/index.js";
import { unavailable, type SymbolInfo } from "../catalog.js";
import { h, note, setText, simulatedBadge, svg, tableWrap } from "../dom.js";
import { isFiniteNumber, num, signed } from "../format.js";
import { fetchHistory } from "../history.js";
import { isStringArray, load, save } from "../prefs.js";
import type { Page, PageContext } from "./page.js";

/** Prices a sparkline shows: about a minute, at a tick a second. */
const SPARK_POINTS = 60;
const DEFAULT_PICKS = ["AAPL", "MSFT", "NVDA", "TSLA", "GOOG"];

interface Quote {
  symbol: string;
  name?: string;
  ts: number;
  price: number;
  bid?: number;
  ask?: number;
  change?: number;
  change_pct?: number;
  volume?: number;
}

function isQuote(data: unknown): data is Quote {
  const q = data as Partial<Quote> | null;
  return q !== null && typeof q === "object" && isFiniteNumber(q.ts) && isFiniteNumber(q.price);
}

/** One row of the ticker, and the state behind it. */
class TickerRow {
  readonly el: HTMLTableRowElement;
  private readonly price = h("td", { class: "num price" }, "–");
  private readonly change = h("td", { class: "num change" }, "–");
  private readonly changePct = h("td", { class: "num change-pct" }, "–");
  private readonly bidAsk = h("td", { class: "num bid-ask" }, "–");
  private readonly volume = h("td", { class: "num volume" }, "–");
  private readonly line = svg("polyline", { fill: "none", "vector-effect": "non-scaling-stroke" });
  private points: { ts: number; price: number }[] = [];
  private quote: Quote | null = null;
  private ticks = 0;
  private direction: "up" | "down" | null = null;
  private stale = false;
  unsubscribe: (() => void) | null = null;

  constructor(readonly info: SymbolInfo) {
    const spark = svg("svg", { class: "spark", viewBox: `0 0 ${SPARK_POINTS - 1} 20`, preserveAspectRatio: "none", "aria-hidden": "true" }, this.line);
    this.el = h(
      "tr",
      { "data-symbol": info.symbol, "data-ticks": 0 },
      h("th", { scope: "row" }, info.symbol),
      h("td", { class: "name" }, info.name),
      this.price,
      this.change,
      this.changePct,
      this.bidAsk,
      this.volume,
      h("td", { class: "trend" }, spark),
    );
  }

  /** History: fills the sparkline and shows the newest quote (not counted as a tick). */
  fill(quotes: Quote[], active: boolean): void {
    const byTs = new Map(this.points.map((p) => [p.ts, p.price]));
    for (const q of quotes) {
      byTs.set(q.ts, q.price);
    }
    this.points = [...byTs].sort((a, b) => a[0] - b[0]).slice(-SPARK_POINTS).map(([ts, price]) => ({ ts, price }));
    const newest = quotes[quotes.length - 1];
    if (newest && (!this.quote || newest.ts > this.quote.ts)) {
      this.quote = newest;
    }
    this.stale = true;
    if (active) {
      this.render(false);
    }
  }

  tick(q: Quote, active: boolean): void {
    const previous = this.quote?.price;
    this.ticks++;
    this.stale = true;
    let moved = false;
    if (!this.quote || q.ts >= this.quote.ts) {
      if (previous !== undefined && q.price !== previous) {
        this.direction = q.price > previous ? "up" : "down";
        moved = true;
      }
      this.quote = q;
      const last = this.points[this.points.length - 1];
      if (!last || q.ts > last.ts) {
        this.points.push({ ts: q.ts, price: q.price });
        if (this.points.length > SPARK_POINTS) {
          this.points.shift();
        }
      }
    }
    if (active) {
      this.render(moved);
    }
  }

  /** Writes the state into the row; `flash` plays the up/down highlight. */
  render(flash: boolean): void {
    if (!this.stale) {
      return;
    }
    this.stale = false;
    this.el.dataset.ticks = String(this.ticks);
    const q = this.quote;
    if (!q) {
      return;
    }
    setText(this.price, num(q.price, 2));
    setText(this.change, signed(q.change, 2));
    setText(this.changePct, isFiniteNumber(q.change_pct) ? `${signed(q.change_pct, 2)} %` : "–");
    setText(this.bidAsk, `${num(q.bid, 2)} / ${num(q.ask, 2)}`);
    setText(this.volume, num(q.volume));
    const trend = (q.change ?? 0) >= 0 ? "gain" : "loss";
    this.el.classList.toggle("gain", trend === "gain");
    this.el.classList.toggle("loss", trend === "loss");
    if (this.direction) {
      this.el.classList.toggle("up", this.direction === "up");
      this.el.classList.toggle("down", this.direction === "down");
    }
    if (flash && this.direction) {
      const color = this.direction === "up" ? "rgba(52, 211, 153, 0.35)" : "rgba(248, 113, 113, 0.35)";
      this.el.animate([{ backgroundColor: color }, { backgroundColor: "transparent" }], { duration: 900, easing: "ease-out" });
    }
    this.drawSpark();
  }

  private drawSpark(): void {
    const p = this.points.map((pt) => pt.price);
    if (p.length < 2) {
      this.line.setAttribute("points", "");
      return;
    }
    const min = Math.min(...p);
    const max = Math.max(...p);
    const span = max - min || 1;
    const offset = SPARK_POINTS - p.length;
    this.line.setAttribute("points", p.map((v, i) => `${offset + i},${(19 - ((v - min) / span) * 18).toFixed(2)}`).join(" "));
  }
}

export function marketsPage({ conn, catalog, root }: PageContext): Page {
  let active = false;
  const rows = new Map<string, TickerRow>();
  const tbody = h("tbody");
  const empty = h("tr", { class: "empty" }, h("td", { colspan: 8 }, "Pick a symbol above to follow it."));

  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h2", {}, "Markets ", simulatedBadge()),
      h("p", { class: "muted" }, "A random-walk stock ticker. Each symbol you pick is one subscription to stocks/{SYMBOL}."),
    ),
  );
  const content = h("div", { class: "loading" }, "Loading the symbols…");
  root.append(content);

  async function pick(info: SymbolInfo): Promise<void> {
    if (rows.has(info.symbol)) {
      return;
    }
    const row = new TickerRow(info);
    rows.set(info.symbol, row);
    layout();
    row.unsubscribe = conn.subscribe(info.channel, { latest: true }, {
      message: (m: Message) => {
        if (isQuote(m.data)) {
          row.tick(m.data, active);
        }
      },
      unrecovered: () => void refill(row),
    });
    await refill(row);
  }

  async function refill(row: TickerRow): Promise<void> {
    const quotes = (await fetchHistory(row.info.channel, SPARK_POINTS)).map((p) => p.data).filter(isQuote);
    if (rows.get(row.info.symbol) === row) {
      row.fill(quotes, active);
    }
  }

  function unpick(symbol: string): void {
    const row = rows.get(symbol);
    row?.unsubscribe?.();
    row?.el.remove();
    rows.delete(symbol);
    layout();
  }

  let order: string[] = [];
  function layout(): void {
    const picked = order.map((s) => rows.get(s)).filter((r): r is TickerRow => r !== undefined);
    tbody.replaceChildren(...(picked.length ? picked.map((r) => r.el) : [empty]));
  }

  void catalog.then((cat) => {
    const problem = unavailable(cat, cat?.stocks, "stock ticker");
    const symbols = cat?.stocks?.symbols ?? [];
    if (problem || symbols.length === 0) {
      content.replaceWith(note(problem?.title ?? "No symbols", problem?.text ?? "The stock source lists no symbols."));
      return;
    }
    order = symbols.map((s) => s.symbol);
    const stored = load<string[]>("symbols", DEFAULT_PICKS, isStringArray);
    const picked = new Set(stored.filter((s) => order.includes(s)));
    const chips = h("div", { class: "chips", role: "group", "aria-label": "Symbols" });
    for (const info of symbols) {
      const box = h("input", { type: "checkbox", "data-symbol": info.symbol, checked: picked.has(info.symbol) });
      box.addEventListener("change", () => {
        if (box.checked) {
          void pick(info);
        } else {
          unpick(info.symbol);
        }
        save("symbols", order.filter((s) => rows.has(s)));
      });
      chips.append(h("label", { class: "chip", title: info.name }, box, h("span", {}, info.symbol)));
    }
    const table = h(
      "table",
      { class: "ticker" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Symbol", "Name", "Price", "Change", "Change %", "Bid / Ask", "Volume", "Last minute"].map((t, i) => h("th", { scope: "col", class: i >= 2 && i <= 6 ? "num" : "" }, t)),
        ),
      ),
      tbody,
    );
    content.replaceWith(h("div", { class: "panel" }, chips, tableWrap(table)));
    layout();
    for (const info of symbols) {
      if (picked.has(info.symbol)) {
        void pick(info);
      }
    }
  });

  return {
    id: "markets",
    show() {
      active = true;
      for (const row of rows.values()) {
        row.render(false);
      }
    },
    hide() {
      active = false;
    },
    resync() {
      for (const row of rows.values()) {
        void refill(row);
      }
    },
  };
}
