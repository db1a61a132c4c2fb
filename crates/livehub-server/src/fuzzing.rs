//! Entry points for the fuzz targets in `fuzz/`: each hands untrusted bytes to one decoder, the
//! way a client's bytes reach it. Not an API: hidden, and free to change with the decoders.
//!
//! The corpus the fuzzers grow is kept in `fuzz/corpus/<target>/`, and the test at the bottom
//! replays all of it on every `cargo test`, so a crash once found stays fixed on stable Rust too.

use livehub_core::{ChannelFilter, ChannelLimits, Payload};

use crate::cursor::Cursor;
use crate::engine::Request;
use crate::protocol::Format;

/// One decoder's entry point.
pub type Target = fn(&[u8]);

/// The decoders that take bytes from clients, by fuzz target name.
pub const TARGETS: [(&str, Target); 9] = [
    ("command_json", command_json),
    ("command_msgpack", command_msgpack),
    ("cursor", cursor),
    ("request_head", request_head),
    ("channel", channel),
    ("ws_frames", ws_frames),
    ("signalr", signalr),
    ("mqtt_packets", mqtt_packets),
    ("time_query", time_query),
];

/// A WebSocket text message as a command.
pub fn command_json(bytes: &[u8]) {
    let _ = Request::decode(Format::Json, bytes);
}

/// A WebSocket binary message as a command.
pub fn command_msgpack(bytes: &[u8]) {
    let _ = Request::decode(Format::MessagePack, bytes);
}

/// A cursor (`Last-Event-ID`, `?cursor=`), with the default and with tight limits.
pub fn cursor(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let _ = Cursor::decode(text);
    let _ = Cursor::decode_with_limits(text, &ChannelLimits { max_len: 8, max_levels: 2 });
}

/// The first bytes of a connection, as the direct path parses them.
pub fn request_head(bytes: &[u8]) {
    crate::direct::fuzz_parse(bytes);
}

/// A client's WebSocket bytes as the fragment watcher reads their frame headers.
pub fn ws_frames(bytes: &[u8]) {
    crate::ws::fuzz_frames(bytes);
}

/// A SignalR client's bytes: the handshake and either hub protocol's records.
pub fn signalr(bytes: &[u8]) {
    crate::signalr::protocol::fuzz(bytes);
}

/// A client's MQTT bytes, as a first packet and as either version's stream of packets. Every
/// packet decoded must encode and decode again to itself.
pub fn mqtt_packets(bytes: &[u8]) {
    use livehub_mqtt::{decode, encode, Version};
    let _ = decode(bytes, None, 1024);
    for version in [Version::V311, Version::V5] {
        let mut rest = bytes;
        while let Ok(Some(decoded)) = decode(rest, Some(version), usize::MAX) {
            rest = &rest[decoded.len..];
            let mut again = Vec::new();
            encode(&decoded.packet, version, &mut again);
            let redecoded = decode(&again, Some(version), usize::MAX);
            let redecoded = redecoded.ok().flatten().map(|d| d.packet);
            assert_eq!(redecoded.as_ref(), Some(&decoded.packet), "{version:?} round trip");
        }
    }
}

/// A channel name, a filter, a `channel=` list and JSON data: what every publish and subscribe
/// validates.
pub fn channel(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(filter) = ChannelFilter::new(text) {
        let _ = filter.to_string();
    }
    let _ = crate::channel_list::split(text);
    let _ = Payload::json(bytes.to_vec());
}

/// The query string of a history read by time and of a series request.
pub fn time_query(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let _ = crate::api::history_params(Some(text));
    let _ = crate::series::SeriesParams::parse(Some(text));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_corpus_input_replays_without_a_panic() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let mut replayed = 0;
        for (name, target) in TARGETS {
            let dir = corpus.join(name);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let bytes = std::fs::read(&path).expect("corpus file");
                target(&bytes);
                replayed += 1;
            }
        }
        assert!(replayed >= TARGETS.len(), "a seed per target at least, got {replayed}");
    }
}
