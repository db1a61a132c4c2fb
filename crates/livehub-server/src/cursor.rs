//! Resume tokens: the position of every channel of a stream, in one opaque, self-contained string.
//!
//! SSE sends one as each event's `id:` (so `Last-Event-ID` resumes every channel of the stream),
//! and long polling returns one as `cursor`. Being self-contained, they need no server-side session
//! and no sticky load balancing.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use livehub_core::{ChannelName, Epoch, StreamPosition};

/// Longest cursor accepted, encoded; bounds the work a client can ask for with one token.
pub const MAX_CURSOR_LEN: usize = 8 * 1024;

/// Longest epoch accepted inside a cursor.
const MAX_EPOCH_LEN: usize = 64;

/// The position of each channel a client has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Position per channel.
    pub positions: BTreeMap<ChannelName, StreamPosition>,
}

/// A cursor that is not one this server issued.
#[derive(Debug, thiserror::Error)]
#[error("bad cursor: {0}")]
pub struct BadCursor(&'static str);

impl Cursor {
    /// Encodes the positions as base64url of `channel offset epoch` lines (channel names contain
    /// neither spaces nor line breaks, and epochs are server-made).
    pub fn encode<'a>(positions: impl Iterator<Item = (&'a ChannelName, u64, &'a Epoch)>) -> String {
        let mut text = String::new();
        for (channel, offset, epoch) in positions {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(channel.as_str());
            text.push(' ');
            text.push_str(&offset.to_string());
            text.push(' ');
            text.push_str(epoch.as_str());
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Decodes a cursor made by [`Cursor::encode`]. The empty string is the empty cursor.
    pub fn decode(token: &str) -> Result<Self, BadCursor> {
        if token.len() > MAX_CURSOR_LEN {
            return Err(BadCursor("too long"));
        }
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| BadCursor("not base64url"))?;
        let text = String::from_utf8(bytes).map_err(|_| BadCursor("not UTF-8"))?;
        let mut positions = BTreeMap::new();
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let mut parts = line.split(' ');
            let (Some(channel), Some(offset), Some(epoch), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(BadCursor("malformed entry"));
            };
            let channel = ChannelName::new(channel).map_err(|_| BadCursor("invalid channel"))?;
            let offset = offset.parse().map_err(|_| BadCursor("invalid offset"))?;
            if epoch.is_empty() || epoch.len() > MAX_EPOCH_LEN {
                return Err(BadCursor("invalid epoch"));
            }
            positions.insert(channel, StreamPosition { offset, epoch: Epoch::from_client(epoch) });
        }
        Ok(Self { positions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let a = ChannelName::new("metrics/system").expect("valid");
        let b = ChannelName::new("stocks/AAPL").expect("valid");
        let e = Epoch::from_client("abc123");
        let token = Cursor::encode([(&a, 7, &e), (&b, 0, &e)].into_iter());
        let cursor = Cursor::decode(&token).expect("decodes");
        assert_eq!(cursor.positions[&a], StreamPosition { offset: 7, epoch: e.clone() });
        assert_eq!(cursor.positions[&b].offset, 0);
        assert!(Cursor::decode("").expect("empty").positions.is_empty());
    }

    #[test]
    fn rejects_garbage() {
        let encode = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            "!!!".to_string(),
            encode("a 1"),
            encode("a x e"),
            encode("a b 1 e"),
            encode("bad//name 1 e"),
            encode("a 1 e extra"),
            "A".repeat(MAX_CURSOR_LEN + 1),
        ] {
            assert!(Cursor::decode(&bad).is_err(), "{bad}");
        }
    }
}
