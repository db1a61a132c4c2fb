//! Resume tokens: the position of every channel of a stream, in one opaque, self-contained string.
//!
//! SSE sends one as each event's `id:` (so `Last-Event-ID` resumes every channel of the stream),
//! and long polling returns one as `cursor`. Being self-contained, they need no server-side session
//! and no sticky load balancing.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use livehub_core::{ChannelLimits, ChannelName, Epoch, StreamPosition};

/// Longest cursor accepted, encoded; bounds the work a client can ask for with one token.
pub const MAX_CURSOR_LEN: usize = 8 * 1024;

/// Longest epoch accepted inside a cursor.
const MAX_EPOCH_LEN: usize = 64;

/// The characters of a channel name that a cursor line escapes as `%XX`: the escape itself and
/// the two separators. Cursors made before names could hold them decode unchanged.
const ESCAPED: [char; 3] = ['%', ' ', '\n'];

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
    /// Encodes the positions as base64url of `channel offset epoch` lines joined by `\n`. In the
    /// channel, `%`, space and line feed are written `%25`, `%20` and `%0A`; epochs are
    /// server-made and contain none of them.
    pub fn encode<'a>(positions: impl Iterator<Item = (&'a ChannelName, u64, &'a Epoch)>) -> String {
        let mut text = String::new();
        for (channel, offset, epoch) in positions {
            if !text.is_empty() {
                text.push('\n');
            }
            escape_into(&mut text, channel.as_str());
            // Writing into a String cannot fail.
            let _ = write!(text, " {offset} ");
            text.push_str(epoch.as_str());
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Decodes a cursor made by [`Cursor::encode`], with names checked against the default
    /// [`ChannelLimits`]. The empty string is the empty cursor.
    pub fn decode(token: &str) -> Result<Self, BadCursor> {
        Self::decode_with_limits(token, &ChannelLimits::default())
    }

    /// Decodes a cursor made by [`Cursor::encode`], with names checked against `limits` (a
    /// server's configured ones, so that every name it accepts also resumes).
    pub fn decode_with_limits(token: &str, limits: &ChannelLimits) -> Result<Self, BadCursor> {
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
            let channel = unescape(channel)?;
            let channel =
                ChannelName::with_limits(&channel, limits).map_err(|_| BadCursor("invalid channel"))?;
            let offset = offset.parse().map_err(|_| BadCursor("invalid offset"))?;
            if epoch.is_empty() || epoch.len() > MAX_EPOCH_LEN {
                return Err(BadCursor("invalid epoch"));
            }
            positions.insert(channel, StreamPosition { offset, epoch: Epoch::from_client(epoch) });
        }
        Ok(Self { positions })
    }
}

/// The value of one hexadecimal digit.
fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Appends `name` with the [`ESCAPED`] characters as `%XX`.
fn escape_into(text: &mut String, name: &str) {
    // Most names need nothing: copy them whole.
    if !name.contains(ESCAPED) {
        text.push_str(name);
        return;
    }
    for c in name.chars() {
        match c {
            '%' => text.push_str("%25"),
            ' ' => text.push_str("%20"),
            '\n' => text.push_str("%0A"),
            c => text.push(c),
        }
    }
}

/// Reverses [`escape_into`]: any `%XX` (two hex digits) is that byte; a `%` without them is an
/// error, and the result must be UTF-8.
fn unescape(escaped: &str) -> Result<Cow<'_, str>, BadCursor> {
    if !escaped.contains('%') {
        return Ok(Cow::Borrowed(escaped));
    }
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'%' {
            bytes.push(b);
            rest = tail;
            continue;
        }
        let [hi, lo, ..] = *tail else { return Err(BadCursor("malformed escape")) };
        let (Some(hi), Some(lo)) = (hex_digit(hi), hex_digit(lo)) else {
            return Err(BadCursor("malformed escape"));
        };
        bytes.push(hi << 4 | lo);
        rest = &tail[2..];
    }
    String::from_utf8(bytes).map(Cow::Owned).map_err(|_| BadCursor("not UTF-8"))
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
            encode("bad/+/name 1 e"),
            encode("a 1 e extra"),
            encode("a%2 1 e"),
            encode("a%zz 1 e"),
            encode("a%+1 1 e"),
            encode("a%ff 1 e"),
            encode("a%00 1 e"),
            encode("a/%2B 1 e"),
            "A".repeat(MAX_CURSOR_LEN + 1),
        ] {
            assert!(Cursor::decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn escapes_only_what_would_break_a_line() {
        let e = Epoch::from_client("e1");
        let table = [
            ("metrics/system", "metrics/system 3 e1"),
            ("x y", "x%20y 3 e1"),
            ("a%20", "a%2520 3 e1"),
            ("line\nbreak", "line%0Abreak 3 e1"),
            ("cr\r,\"é\\", "cr\r,\"é\\ 3 e1"),
        ];
        for (name, line) in table {
            let channel = ChannelName::new(name).expect("valid");
            let token = Cursor::encode(std::iter::once((&channel, 3, &e)));
            let text = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
            assert_eq!(std::str::from_utf8(&text).expect("utf8"), line, "{name:?}");
            let decoded = Cursor::decode(&token).expect("decodes");
            assert_eq!(decoded.positions.keys().map(ChannelName::as_str).collect::<Vec<_>>(), [name]);
        }
    }

    #[test]
    fn cursors_of_the_old_format_still_decode() {
        // Made by the encoder before names could hold `%`, spaces or line breaks.
        let token = URL_SAFE_NO_PAD.encode("metrics/system 7 abc\nstocks/AAPL 0 abc\n$sys/presence 2 x");
        let cursor = Cursor::decode(&token).expect("decodes");
        let names: Vec<&str> = cursor.positions.keys().map(ChannelName::as_str).collect();
        assert_eq!(names, ["$sys/presence", "metrics/system", "stocks/AAPL"]);
        assert_eq!(cursor.positions[&ChannelName::new("metrics/system").expect("valid")].offset, 7);
    }

    #[test]
    fn any_escape_decodes_and_names_obey_the_limits() {
        let token = URL_SAFE_NO_PAD.encode("%41%c3%a9/b 1 e");
        let cursor = Cursor::decode(&token).expect("decodes");
        assert!(cursor.positions.contains_key(&ChannelName::new("Aé/b").expect("valid")));

        let long = "a".repeat(2000);
        let limits = ChannelLimits { max_len: 4096, max_levels: 32 };
        let channel = ChannelName::with_limits(&long, &limits).expect("valid when configured");
        let token = Cursor::encode(std::iter::once((&channel, 1, &Epoch::from_client("e"))));
        assert!(Cursor::decode(&token).is_err(), "longer than the default limit");
        assert!(Cursor::decode_with_limits(&token, &limits).is_ok());
    }
}
