//! Times the hub's fan-out of one publication with many wildcard subscriptions held, so that the
//! routing cost per publication can be compared across changes to the hub:
//!
//! ```text
//! cargo run --release -p livehub-core --example deliver [patterns] [publications]
//! ```
//!
//! Each of `patterns` sessions (10,000 by default) subscribes to its own pattern `bench/<i>/+`,
//! the shape of MQTT devices that each follow their own command topic. The hub then delivers
//! `publications` (100,000 by default) publications straight to its [`PublicationSink`], with
//! no broker in between, on a channel no pattern matches and on one that exactly one matches.
//! The figure is the best of a few rounds, in nanoseconds per publication.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use livehub_core::{
    ChannelFilter, ChannelName, Epoch, HistoryConfig, MemoryBroker, Node, NodeConfig, Payload, Publication,
    PublicationSink, SessionReceiver, StreamPosition, SubscribeOptions,
};

/// Rounds timed per case; the fastest is reported, as the one least disturbed by the machine.
const ROUNDS: usize = 5;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let patterns = args.next().unwrap_or(10_000);
    let publications = args.next().unwrap_or(100_000);

    let sink_slot: Arc<Mutex<Option<Arc<dyn PublicationSink>>>> = Arc::default();
    let slot = sink_slot.clone();
    // Room for every publication of every round: the one matching session is never cut off as a
    // slow consumer, which would change what is timed.
    let config = NodeConfig { queue_capacity: publications * ROUNDS + 1, ..NodeConfig::default() };
    let node = Node::with_broker(config, move |sink| {
        *slot.lock().expect("unpoisoned") = Some(sink.clone());
        Arc::new(MemoryBroker::new(HistoryConfig::default(), livehub_core::Clock::system(), sink))
    });
    let sink = sink_slot.lock().expect("unpoisoned").take().expect("the hub's sink");

    let nobody = publication("bench/none/x");
    let one = publication("bench/7/x");
    println!("{publications} publications, best of {ROUNDS} rounds, ns per publication");
    println!("{:>9} {:>12} {:>12}", "patterns", "no match", "one match");
    let mut receivers: Vec<SessionReceiver> = Vec::new();
    for count in [0, patterns] {
        while receivers.len() < count {
            let rx = node.connect("bench");
            let filter = ChannelFilter::new(&format!("bench/{}/+", receivers.len())).expect("valid pattern");
            node.subscribe(rx.session(), &filter, SubscribeOptions::default()).await.expect("subscribe");
            receivers.push(rx);
        }
        let none = best(|| time(&*sink, &nobody, publications));
        let matched = best(|| time(&*sink, &one, publications));
        println!("{count:>9} {none:>12.1} {matched:>12.1}");
        for rx in &mut receivers {
            while rx.try_recv().is_some() {}
        }
    }
}

fn publication(channel: &str) -> Arc<Publication> {
    let channel = ChannelName::new(channel).expect("valid channel");
    let position = StreamPosition { offset: 1, epoch: Epoch::random() };
    Arc::new(Publication::new(channel, Payload::json("1").expect("valid json"), position))
}

/// Nanoseconds per delivery of `publication`, over `n` deliveries.
fn time(sink: &dyn PublicationSink, publication: &Arc<Publication>, n: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        sink.deliver(publication);
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

fn best(mut run: impl FnMut() -> f64) -> f64 {
    (0..ROUNDS).map(|_| run()).fold(f64::INFINITY, f64::min)
}
