//! Publications and their positions in a channel's stream.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::channel::ChannelName;
use crate::clock::Clock;
use crate::error::Error;
use crate::frames::{Encoding, FrameCache};

/// Identifies one generation of a channel's history. It changes whenever the history is lost (a
/// restart of the in-memory broker, an expired stream), so an offset is only meaningful together
/// with its epoch.
#[derive(Clone, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(Arc<str>);

impl PartialEq for Epoch {
    /// Every publication of a stream shares the stream's epoch: compared by pointer first, as
    /// fan-out does for each subscriber.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for Epoch {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Epoch {
    /// A fresh random epoch.
    pub fn random() -> Self {
        Self(Arc::from(format!("{:08x}", rand::random::<u32>())))
    }

    /// Wraps an epoch received from a client.
    pub fn from_client(s: &str) -> Self {
        Self(Arc::from(s))
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A position in a channel's stream: the offset of the last publication, within an epoch.
/// Offsets start at 1; offset 0 means "before the first publication".
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StreamPosition {
    /// Offset of the last publication at this position; strictly increasing per channel.
    pub offset: u64,
    /// The generation of history this offset belongs to.
    pub epoch: Epoch,
}

/// The data of a publication.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// A JSON value, kept as compact JSON text (no raw newlines, so it fits an SSE `data:` line).
    Json(Bytes),
    /// Opaque bytes, published over a binary transport.
    Binary(Bytes),
}

impl Payload {
    /// Validates `text` as JSON and makes it compact if it contains line breaks.
    pub fn json(text: impl Into<Bytes>) -> Result<Self, Error> {
        let text: Bytes = text.into();
        let value: &serde_json::value::RawValue =
            serde_json::from_slice(&text).map_err(|e| Error::InvalidData(format!("not valid JSON: {e}")))?;
        // Line breaks can only appear as whitespace between tokens (inside strings they are
        // escaped), and an SSE `data:` line cannot carry them, so re-encode compactly.
        if text.iter().any(|&b| b == b'\n' || b == b'\r') {
            let value: serde_json::Value = serde_json::from_str(value.get())
                .map_err(|e| Error::InvalidData(format!("not valid JSON: {e}")))?;
            return Ok(Self::Json(Bytes::from(value.to_string())));
        }
        Ok(Self::Json(text))
    }

    /// Wraps an already-parsed JSON value.
    pub fn from_value(value: &serde_json::Value) -> Self {
        Self::Json(Bytes::from(value.to_string()))
    }

    /// Size of the data in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Json(b) | Self::Binary(b) => b.len(),
        }
    }

    /// Whether the data is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One message published on one channel, shared by every subscriber that receives it.
pub struct Publication {
    /// The channel it was published on.
    pub channel: ChannelName,
    /// The data.
    pub data: Payload,
    /// Its position in the channel's stream.
    pub position: StreamPosition,
    /// Server time of publication, in milliseconds since the Unix epoch.
    pub ts: u64,
    frames: FrameCache,
}

impl Publication {
    /// A publication at `position`, timestamped now by the system clock (brokers timestamp by
    /// their [`Clock`] with [`with_ts`](Self::with_ts)).
    pub fn new(channel: ChannelName, data: Payload, position: StreamPosition) -> Self {
        Self::with_ts(channel, data, position, Clock::system().now_millis())
    }

    /// A publication with an explicit timestamp, in milliseconds since the Unix epoch.
    pub fn with_ts(channel: ChannelName, data: Payload, position: StreamPosition, ts: u64) -> Self {
        Self { channel, data, position, ts, frames: FrameCache::default() }
    }

    /// The publication in `encoding`, computed by `encode` on first use and shared after.
    pub fn frame(&self, encoding: Encoding, encode: impl FnOnce(&Publication) -> Bytes) -> Bytes {
        self.frame_ref(encoding, encode).clone()
    }

    /// Like [`frame`](Self::frame), borrowed: a writer that holds the publication while it
    /// writes saves the reference count's two atomic operations per subscriber.
    pub fn frame_ref(&self, encoding: Encoding, encode: impl FnOnce(&Publication) -> Bytes) -> &Bytes {
        self.frames.get_or_encode(encoding, || encode(self))
    }
}

impl fmt::Debug for Publication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publication")
            .field("channel", &self.channel)
            .field("offset", &self.position.offset)
            .field("epoch", &self.position.epoch)
            .field("ts", &self.ts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payload_is_validated_and_compacted() {
        assert!(Payload::json("{").is_err());
        assert!(Payload::json("").is_err());
        assert_eq!(Payload::json("{\"a\": 1}").expect("valid"), Payload::Json(Bytes::from("{\"a\": 1}")));
        assert_eq!(
            Payload::json("{\n \"a\": \"x\\ny\"\n}").expect("valid"),
            Payload::Json(Bytes::from("{\"a\":\"x\\ny\"}"))
        );
    }

    #[test]
    fn frames_are_encoded_once() {
        let position = StreamPosition { offset: 1, epoch: Epoch::random() };
        let p = Publication::new(
            ChannelName::new("a").expect("valid"),
            Payload::json("1").expect("valid"),
            position,
        );
        let json = Encoding::register("test-json");
        let mut calls = 0;
        for _ in 0..3 {
            let frame = p.frame(json, |_| {
                calls += 1;
                Bytes::from_static(b"x")
            });
            assert_eq!(frame, "x");
        }
        assert_eq!(calls, 1);
    }
}
