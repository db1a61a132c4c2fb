//! The simulated stock ticker on `stocks/{SYMBOL}`.

use livehub_core::{ChannelName, Error};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use crate::runner::Generator;
use crate::sim::{gaussian, round_to};
use crate::{Sample, StocksConfig};

/// The listed symbols: ticker, company name, starting price, drift and volatility per tick
/// (as fractions of the price), and the typical shares traded per tick.
const SYMBOLS: [(&str, &str, f64, f64, f64, u64); 12] = [
    ("AAPL", "Apple", 189.40, 0.000_004, 0.0008, 900),
    ("MSFT", "Microsoft", 415.10, 0.000_005, 0.0007, 600),
    ("GOOG", "Alphabet", 171.30, 0.000_003, 0.0009, 500),
    ("AMZN", "Amazon", 183.60, 0.000_004, 0.0010, 700),
    ("NVDA", "NVIDIA", 121.80, 0.000_008, 0.0018, 2000),
    ("META", "Meta Platforms", 502.50, 0.000_004, 0.0012, 400),
    ("TSLA", "Tesla", 177.90, -0.000_002, 0.0022, 1500),
    ("JPM", "JPMorgan Chase", 198.20, 0.000_002, 0.0006, 300),
    ("V", "Visa", 276.40, 0.000_002, 0.0005, 250),
    ("KO", "Coca-Cola", 62.70, 0.000_001, 0.0004, 450),
    ("XOM", "Exxon Mobil", 113.50, -0.000_001, 0.0008, 500),
    ("NFLX", "Netflix", 640.10, 0.000_003, 0.0013, 200),
];

/// Mean time between two ticks of one symbol, in milliseconds: each symbol ticks about once a
/// second, so twelve symbols make a dozen ticks a second.
pub(crate) const MEAN_TICK_GAP_MS: u64 = 1000;

/// Half-width of the random spread of tick gaps around [`MEAN_TICK_GAP_MS`]: enough jitter that
/// symbols do not tick in lockstep.
const TICK_GAP_JITTER_MS: u64 = 500;

/// Half the bid/ask spread, in basis points of the price (at least one cent).
const HALF_SPREAD_BPS: f64 = 0.5;

/// Lowest price a symbol falls to, so that the bid stays positive.
const MIN_PRICE: f64 = 1.0;

/// Shares traded before the source started, as a multiple of one tick's typical volume.
const OPENING_VOLUME_TICKS: u64 = 2000;

/// The channel of `symbol`.
pub(crate) fn channel_name(symbol: &str) -> String {
    format!("stocks/{symbol}")
}

/// The `stocks` entry of the catalog.
pub(crate) fn catalog(config: &StocksConfig) -> Value {
    let symbols: Vec<Value> = SYMBOLS
        .iter()
        .map(|(symbol, name, ..)| json!({ "symbol": symbol, "name": name, "channel": channel_name(symbol) }))
        .collect();
    json!({
        "enabled": config.enabled,
        "simulated": true,
        "interval_ms": config.interval_ms,
        "symbols": symbols,
    })
}

/// One symbol's state.
struct Quote {
    symbol: &'static str,
    name: &'static str,
    channel: ChannelName,
    drift: f64,
    volatility: f64,
    lot: u64,
    open: f64,
    price: f64,
    high: f64,
    low: f64,
    volume: u64,
    /// When it ticks next, in milliseconds since the Unix epoch (0: on the first round).
    next_tick_ms: u64,
}

/// Generates the ticker: each symbol follows a geometric random walk and ticks about once a
/// second, at jittered times.
pub(crate) struct Ticker {
    quotes: Vec<Quote>,
    rng: StdRng,
}

impl Ticker {
    /// A ticker at its opening prices.
    pub(crate) fn new(mut rng: StdRng) -> Result<Self, Error> {
        let quotes = SYMBOLS
            .iter()
            .map(|&(symbol, name, open, drift, volatility, lot)| {
                Ok(Quote {
                    symbol,
                    name,
                    channel: ChannelName::new(&channel_name(symbol))?,
                    drift,
                    volatility,
                    lot,
                    open,
                    price: open,
                    high: open,
                    low: open,
                    volume: lot * OPENING_VOLUME_TICKS + rng.random_range(0..lot * 100),
                    next_tick_ms: 0,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self { quotes, rng })
    }

    fn tick_gap(&mut self) -> u64 {
        self.rng.random_range(MEAN_TICK_GAP_MS - TICK_GAP_JITTER_MS..=MEAN_TICK_GAP_MS + TICK_GAP_JITTER_MS)
    }
}

impl Generator for Ticker {
    const NAME: &'static str = "stocks";

    fn tick(&mut self, now_ms: u64) -> Vec<Sample> {
        let mut samples = Vec::new();
        for i in 0..self.quotes.len() {
            let due = self.quotes[i].next_tick_ms;
            if due > now_ms {
                continue;
            }
            let gap = self.tick_gap();
            let shock = gaussian(&mut self.rng);
            let traded = self.rng.random_range(1..=self.quotes[i].lot * 2);
            let quote = &mut self.quotes[i];
            // The first round spreads the symbols over the first second; later rounds keep the
            // schedule exact (gap from the due time, not from now) unless the source stalled.
            quote.next_tick_ms = match due {
                0 => now_ms + gap / 2,
                _ if due + gap > now_ms => due + gap,
                _ => now_ms + gap,
            };
            quote.price = (quote.price * (quote.drift + quote.volatility * shock).exp()).max(MIN_PRICE);
            quote.high = quote.high.max(quote.price);
            quote.low = quote.low.min(quote.price);
            quote.volume += traded;
            samples.push(Sample { channel: quote.channel.clone(), data: quote.payload(now_ms) });
        }
        samples
    }
}

impl Quote {
    fn payload(&self, now_ms: u64) -> Value {
        // Work in whole cents so that bid < price < ask holds after rounding.
        let cents = (self.price * 100.0).round();
        let half_spread = (cents * HALF_SPREAD_BPS / 10_000.0).round().max(1.0);
        let price = cents / 100.0;
        let change = price - self.open;
        json!({
            "symbol": self.symbol,
            "name": self.name,
            "ts": now_ms,
            "simulated": true,
            "price": price,
            "bid": (cents - half_spread) / 100.0,
            "ask": (cents + half_spread) / 100.0,
            "open": self.open,
            "high": round_to(self.high, 2),
            "low": round_to(self.low, 2),
            "change": round_to(change, 2),
            "change_pct": round_to(change / self.open * 100.0, 2),
            "volume": self.volume,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;

    use super::*;

    const START_MS: u64 = 1_763_791_200_000;

    fn run(seconds: u64, interval_ms: u64) -> Vec<Sample> {
        let mut ticker = Ticker::new(StdRng::seed_from_u64(7)).expect("valid channels");
        (0..seconds * 1000 / interval_ms)
            .flat_map(|round| ticker.tick(START_MS + round * interval_ms))
            .collect()
    }

    fn number(data: &Value, field: &str) -> f64 {
        data[field].as_f64().unwrap_or_else(|| panic!("{field} is a number in {data}"))
    }

    #[test]
    fn channels_are_the_documented_ones() {
        let expected =
            ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "KO", "XOM", "NFLX"];
        let ticker = Ticker::new(StdRng::seed_from_u64(1)).expect("valid channels");
        let channels: Vec<&str> = ticker.quotes.iter().map(|q| q.channel.as_str()).collect();
        let documented: Vec<String> = expected.iter().map(|s| format!("stocks/{s}")).collect();
        assert_eq!(channels, documented);
    }

    #[test]
    fn every_symbol_ticks_about_once_a_second() {
        let config = StocksConfig::default();
        let seconds = 120;
        let samples = run(seconds, config.interval_ms);
        let mut per_symbol: HashMap<&str, u64> = HashMap::new();
        for sample in &samples {
            *per_symbol.entry(sample.channel.as_str()).or_default() += 1;
        }
        assert_eq!(per_symbol.len(), SYMBOLS.len(), "every symbol ticked");
        let expected = seconds * 1000 / MEAN_TICK_GAP_MS;
        for (channel, ticks) in &per_symbol {
            assert!((expected * 8 / 10..=expected * 12 / 10).contains(ticks), "{channel}: {ticks}");
        }
        let per_sec = samples.len() as f64 / seconds as f64;
        let target = SYMBOLS.len() as f64 * 1000.0 / MEAN_TICK_GAP_MS as f64;
        assert!((target * 0.8..=target * 1.2).contains(&per_sec), "{per_sec} ticks/s");
        // A few per round, not all at once.
        let rounds = seconds * 1000 / config.interval_ms;
        assert!(samples.len() as u64 > rounds, "several ticks per round on average");
    }

    #[test]
    fn quotes_are_consistent() {
        for sample in run(600, 250) {
            let d = &sample.data;
            let (price, bid, ask) = (number(d, "price"), number(d, "bid"), number(d, "ask"));
            let (open, high, low) = (number(d, "open"), number(d, "high"), number(d, "low"));
            assert!(price > 0.0 && bid > 0.0, "{d}");
            assert!(bid < price && price < ask, "{d}");
            assert!(low <= price && price <= high, "{d}");
            assert_eq!(price, round_to(price, 2), "whole cents: {d}");
            let change = number(d, "change");
            assert!((change - (price - open)).abs() < 0.011, "{d}");
            assert!((number(d, "change_pct") - change / open * 100.0).abs() < 0.02, "{d}");
            assert_eq!(d["simulated"], true);
            assert!(d["ts"].as_u64().is_some_and(|ts| ts >= START_MS));
            assert_eq!(format!("stocks/{}", d["symbol"].as_str().expect("symbol")), sample.channel.as_str());
        }
    }

    #[test]
    fn volume_grows_and_prices_move() {
        let samples = run(60, 250);
        let aapl: Vec<&Value> =
            samples.iter().filter(|s| s.channel.as_str() == "stocks/AAPL").map(|s| &s.data).collect();
        let volumes: Vec<u64> = aapl.iter().map(|d| d["volume"].as_u64().expect("volume")).collect();
        assert!(volumes.windows(2).all(|w| w[0] < w[1]), "volume grows");
        let prices: Vec<f64> = aapl.iter().map(|d| number(d, "price")).collect();
        assert!(prices.windows(2).any(|w| w[0] != w[1]), "price moves");
    }

    #[test]
    fn same_seed_same_ticks() {
        let a: Vec<Value> = run(10, 250).into_iter().map(|s| s.data).collect();
        let b: Vec<Value> = run(10, 250).into_iter().map(|s| s.data).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn catalog_lists_the_symbols() {
        let value = catalog(&StocksConfig::default());
        assert_eq!(value["symbols"].as_array().map(Vec::len), Some(12));
        assert_eq!(
            value["symbols"][0],
            json!({ "symbol": "AAPL", "name": "Apple", "channel": "stocks/AAPL" })
        );
        assert_eq!(value["interval_ms"], 250);
    }
}
