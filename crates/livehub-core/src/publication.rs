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

/// How deeply a publication's data may nest arrays and objects: a scalar is depth 0, `[]` and
/// `{"a":1}` are depth 1.
///
/// Every publication is stored once and delivered in several forms: as its own JSON text, but also
/// re-parsed inside a `history` reply, a long-poll body or a channel's `latest`, and converted to
/// MessagePack. serde_json refuses more than 128 levels when it parses, and those envelopes add
/// up to three levels of their own, so data much deeper would be acknowledged and then arrive as
/// `null` on some transports. 64 keeps every envelope well inside that limit (and inside what
/// common client parsers accept), while real data rarely nests more than ten levels. It also
/// bounds the recursion of every walk over the data.
pub const MAX_DATA_DEPTH: usize = 64;

/// The refusal of data nesting deeper than [`MAX_DATA_DEPTH`], the same on every publishing path.
pub fn data_too_deep() -> Error {
    Error::InvalidData(format!(
        "data nests arrays and objects deeper than {MAX_DATA_DEPTH} levels, the most every transport can deliver"
    ))
}

/// The data of a publication.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// A JSON value, kept as compact JSON text (no raw newlines, so it fits an SSE `data:` line).
    /// Data from outside the process is made with [`Payload::json`], which checks it.
    Json(Bytes),
    /// Opaque bytes, published over a binary transport.
    Binary(Bytes),
}

impl Payload {
    /// Validates `text` as JSON that every transport and store can carry, and makes it compact if
    /// it contains line breaks.
    ///
    /// This is the one gate of publication data: besides being JSON, the data must nest no deeper
    /// than [`MAX_DATA_DEPTH`] and hold no number outside the range of a 64-bit float (`1e400`
    /// is valid JSON text, but neither serde_json nor MessagePack can represent it). Anything that
    /// passes is delivered identically as JSON text, inside parsed envelopes and as MessagePack.
    pub fn json(text: impl Into<Bytes>) -> Result<Self, Error> {
        let text: Bytes = text.into();
        let value: &serde_json::value::RawValue =
            serde_json::from_slice(&text).map_err(|e| Error::InvalidData(format!("not valid JSON: {e}")))?;
        check_representable(value.get().as_bytes())?;
        // Line breaks can only appear as whitespace between tokens (inside strings they are
        // escaped), and an SSE `data:` line cannot carry them, so re-encode compactly.
        if text.iter().any(|&b| b == b'\n' || b == b'\r') {
            let value: serde_json::Value = serde_json::from_str(value.get())
                .map_err(|e| Error::InvalidData(format!("not valid JSON: {e}")))?;
            return Ok(Self::Json(Bytes::from(value.to_string())));
        }
        Ok(Self::Json(text))
    }

    /// Wraps an already-parsed JSON value, unchecked: for the server's own publishers, whose
    /// data is shallow by construction (a `serde_json::Value` holds no NaN or infinity).
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

/// Checks valid JSON `text` for nesting deeper than [`MAX_DATA_DEPTH`] and for numbers beyond a
/// 64-bit float, in one pass over the bytes without recursion, so no parser's recursion limit is
/// hit on the way.
fn check_representable(text: &[u8]) -> Result<(), Error> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                // Skip the string: its brackets and digits are text. A backslash escapes the byte
                // after it (`\"` included); UTF-8 never puts `"` or `\` inside a multi-byte
                // character, so a byte scan is exact.
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DATA_DEPTH {
                    return Err(data_too_deep());
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < text.len()
                    && matches!(text[i + 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                check_number(&text[start..=i])?;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses a JSON number token that overflows a 64-bit float. Without an exponent, a number of
/// at most 308 digits is below `f64::MAX`, so only the rare long or exponent-carrying token is
/// parsed.
fn check_number(token: &[u8]) -> Result<(), Error> {
    if token.len() <= 308 && !token.iter().any(|&b| b == b'e' || b == b'E') {
        return Ok(());
    }
    let finite =
        std::str::from_utf8(token).ok().and_then(|t| t.parse::<f64>().ok()).is_some_and(f64::is_finite);
    if finite {
        Ok(())
    } else {
        Err(Error::InvalidData(format!(
            "number {} is beyond the range of a 64-bit float, which JSON readers and MessagePack need",
            String::from_utf8_lossy(&token[..token.len().min(32)])
        )))
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

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn data_at_the_depth_limit_is_accepted_and_one_deeper_refused() {
        assert!(Payload::json(nested(MAX_DATA_DEPTH)).is_ok());
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DATA_DEPTH), "}".repeat(MAX_DATA_DEPTH));
        assert!(Payload::json(objects).is_ok());
        let error = Payload::json(nested(MAX_DATA_DEPTH + 1)).expect_err("too deep");
        assert_eq!(error.code(), "invalid_data");
        assert!(error.to_string().contains("deeper than 64 levels"), "{error}");
        // Far deeper than any parser's recursion limit: refused, not overflowing a stack.
        assert_eq!(Payload::json(nested(100_000)).expect_err("too deep"), data_too_deep());
        // Depth is the deepest point, not the count of containers.
        let wide = format!("[{}]", vec![nested(MAX_DATA_DEPTH - 1); 3].join(","));
        assert!(Payload::json(wide).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let deep_text = format!("[\"{}\"]", "[{".repeat(200));
        assert!(Payload::json(deep_text).is_ok());
        // An escaped quote does not end the string, and an escaped backslash does not escape the
        // quote after it.
        let escaped = format!("[\"\\\" {}\",\"\\\\\"]", "[".repeat(200));
        assert!(Payload::json(escaped).is_ok());
        let after_escaped_backslash = format!("[\"\\\\\",{}]", nested(MAX_DATA_DEPTH));
        assert_eq!(Payload::json(after_escaped_backslash).expect_err("too deep"), data_too_deep());
        let key = format!("{{\"{}\":1}}", "]".repeat(10));
        assert!(Payload::json(key).is_ok());
    }

    #[test]
    fn numbers_beyond_a_float_are_refused() {
        for ok in ["1e308", "-1.5E-400", "12345678901234567890", "[0,-0.0,1e2]", "\"1e999\""] {
            assert!(Payload::json(ok).is_ok(), "{ok}");
        }
        let long = "9".repeat(400);
        for bad in ["1e400", "[-1E+309]", "{\"a\":2e9999}", long.as_str()] {
            assert_eq!(Payload::json(bad.to_owned()).expect_err(bad).code(), "invalid_data", "{bad}");
        }
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
