//! The marker every benchmark publication carries, `{"bseq":…,"bts":…,"pad":…}`, and finding it
//! in whatever a protocol wraps around it (a livehub `message`, an SSE event, a long-poll body,
//! a bare frame) without decoding the rest.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The data of publication `seq` as compact JSON, padded with `pad` bytes.
pub(crate) fn publication(seq: u64, pad: usize) -> String {
    let mut s = String::with_capacity(pad + 48);
    s.push_str("{\"bseq\":");
    s.push_str(&seq.to_string());
    s.push_str(",\"bts\":");
    s.push_str(&now_micros().to_string());
    s.push_str(",\"pad\":\"");
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// How the numbers after the keys are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `"bseq":123`.
    Json,
    /// A MessagePack string key followed by an unsigned integer.
    MessagePack,
}

/// Calls `found(seq, bts)` for every marker in `bytes`, in order.
pub(crate) fn scan(bytes: &[u8], encoding: Encoding, mut found: impl FnMut(u64, u64)) {
    let (seq_key, ts_key): (&[u8], &[u8]) = match encoding {
        Encoding::Json => (b"\"bseq\"", b"\"bts\""),
        Encoding::MessagePack => (b"\xa4bseq", b"\xa3bts"),
    };
    let mut rest = bytes;
    while let Some(at) = find(rest, seq_key) {
        rest = &rest[at + seq_key.len()..];
        let Some((seq, used)) = number(rest, encoding) else { continue };
        rest = &rest[used..];
        let Some(at) = find(rest, ts_key) else { return };
        rest = &rest[at + ts_key.len()..];
        let Some((ts, used)) = number(rest, encoding) else { continue };
        rest = &rest[used..];
        found(seq, ts);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    // The first byte is rare in payloads (`"` or a MessagePack string marker), so a memchr-like
    // skip to it and a compare is enough; markers are a few per frame.
    let first = needle[0];
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + haystack[from..].iter().position(|&b| b == first)?;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Parses the unsigned number at the start of `bytes`; returns it and the bytes it took.
fn number(bytes: &[u8], encoding: Encoding) -> Option<(u64, usize)> {
    match encoding {
        Encoding::Json => {
            let start = bytes.iter().position(|&b| b != b':' && b != b' ')?;
            let digits = bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 19 {
                return None;
            }
            let mut n = 0u64;
            for &d in &bytes[start..start + digits] {
                n = n * 10 + u64::from(d - b'0');
            }
            Some((n, start + digits))
        }
        Encoding::MessagePack => {
            let (&tag, rest) = bytes.split_first()?;
            let be = |n: usize| -> Option<(u64, usize)> {
                let b = rest.get(..n)?;
                Some((b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)), n + 1))
            };
            match tag {
                0x00..=0x7f => Some((u64::from(tag), 1)),
                0xcc => be(1),
                0xcd => be(2),
                0xce => be(4),
                0xcf | 0xd3 => be(8),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8], encoding: Encoding) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        scan(bytes, encoding, |s, t| v.push((s, t)));
        v
    }

    #[test]
    fn finds_every_json_marker_inside_any_wrapping() {
        let event = b"event: bench/0\nid: abc\ndata: {\"type\":\"message\",\"data\":{\"bseq\":12,\"bts\":1700000000000001,\"pad\":\"xx\"}}\n\n\
                      data: {\"bseq\": 13, \"bts\": 5, \"pad\": \"\"}\n\n";
        assert_eq!(all(event, Encoding::Json), vec![(12, 1_700_000_000_000_001), (13, 5)]);
        assert_eq!(all(b"{\"bseq\":\"x\"}", Encoding::Json), vec![]);
        assert_eq!(all(b"{\"bseq\":1", Encoding::Json), vec![]);
    }

    #[test]
    fn finds_msgpack_markers_of_every_integer_width() {
        for (seq, ts) in [(1u64, 2u64), (200, 70_000), (u64::from(u32::MAX) + 1, 1_700_000_000_000_000)] {
            let value = serde_json::json!({"type":"message","data":{"bseq":seq,"bts":ts,"pad":"xx"}});
            let bytes = rmp_serde::to_vec(&value).expect("encode");
            assert_eq!(all(&bytes, Encoding::MessagePack), vec![(seq, ts)]);
        }
    }

    #[test]
    fn publication_is_json_with_the_marker() {
        let text = publication(7, 3);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["bseq"], 7);
        assert_eq!(v["pad"], "xxx");
        assert_eq!(all(text.as_bytes(), Encoding::Json)[0].0, 7);
    }
}
