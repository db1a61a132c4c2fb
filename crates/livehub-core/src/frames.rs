//! Encoded forms of a publication, cached on it: each transport registers the encodings it
//! writes, and a publication keeps the frames of the encodings actually used, however many
//! subscribers write them.
//!
//! Core names no encoding: a SignalR invocation or an MQTT PUBLISH is one more
//! [`Encoding::register`] in its transport, and costs a publication nothing until it is used.

use std::fmt;
use std::sync::OnceLock;

use parking_lot::Mutex;

use bytes::Bytes;

/// Most encodings one process may register; an id fits in a `u16` with room to spare.
const MAX_ENCODINGS: usize = 256;

/// The names of the registered encodings, indexed by id.
static REGISTRY: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// One way of encoding a publication, registered by a transport. Cheap to copy and compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding(u16);

impl Encoding {
    /// Registers a new encoding. Call it once per encoding, typically from a `static`
    /// `LazyLock`; each call makes a distinct encoding, even for an equal name.
    ///
    /// # Panics
    ///
    /// When more than 256 encodings are registered: that is a transport registering per
    /// connection or per message, a bug to find at once rather than a cache that grows.
    pub fn register(name: &'static str) -> Self {
        let mut registry = REGISTRY.lock();
        assert!(registry.len() < MAX_ENCODINGS, "more than {MAX_ENCODINGS} encodings registered");
        registry.push(name);
        // In range: the assertion above bounds the length below u16::MAX.
        Self((registry.len() - 1) as u16)
    }

    /// The name it was registered with.
    pub fn name(self) -> &'static str {
        REGISTRY.lock().get(usize::from(self.0)).copied().unwrap_or("?")
    }
}

impl fmt::Debug for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoding({}, {:?})", self.0, self.name())
    }
}

/// The frames of one publication: a list that only grows, one entry per encoding used.
///
/// The first entry is inline, so a publication written in one encoding allocates nothing more;
/// later ones are boxed. Entries are set once and never removed, so a reference to a frame lives
/// as long as the publication. A list rather than a slot per registered encoding: publications
/// stay small however many transports a server has.
#[derive(Default)]
pub(crate) struct FrameCache {
    first: OnceLock<Frame>,
}

struct Frame {
    encoding: Encoding,
    bytes: Bytes,
    next: OnceLock<Box<Frame>>,
}

impl FrameCache {
    /// The cached frame of `encoding`, if any.
    fn find(&self, encoding: Encoding) -> Option<&Bytes> {
        let mut frame = self.first.get()?;
        loop {
            if frame.encoding == encoding {
                return Some(&frame.bytes);
            }
            frame = frame.next.get()?;
        }
    }

    /// The frame of `encoding`, made by `encode` on first use.
    ///
    /// `encode` runs before any entry is claimed, so it may itself ask for other encodings of
    /// the same publication (a WebSocket frame is built around the JSON form). Two threads that
    /// race to encode the same publication both encode; the first to store wins, and both
    /// return its bytes.
    pub(crate) fn get_or_encode(&self, encoding: Encoding, encode: impl FnOnce() -> Bytes) -> &Bytes {
        if let Some(bytes) = self.find(encoding) {
            return bytes;
        }
        let mut fresh = Frame { encoding, bytes: encode(), next: OnceLock::new() };
        let mut frame = match self.first.set(fresh) {
            Ok(()) => return &self.get_first().bytes,
            Err(back) => {
                fresh = back;
                self.get_first()
            }
        };
        loop {
            if frame.encoding == encoding {
                return &frame.bytes;
            }
            if frame.next.get().is_none() {
                match frame.next.set(Box::new(fresh)) {
                    Ok(()) => return &Self::set(&frame.next).bytes,
                    // Another thread appended first: look at what it appended.
                    Err(back) => fresh = *back,
                }
            }
            frame = Self::set(&frame.next);
        }
    }

    fn get_first(&self) -> &Frame {
        // Only called after `set` on `first` returned, either way: it is set.
        self.first.get().unwrap_or_else(|| unreachable!("the first frame was just set"))
    }

    /// The frame in `next`, which the caller has seen set (entries are never removed).
    fn set(next: &OnceLock<Box<Frame>>) -> &Frame {
        next.get().unwrap_or_else(|| unreachable!("the next frame was just set"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, LazyLock};

    use super::*;

    static A: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("test-a"));
    static B: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("test-b"));
    static C: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("test-c"));

    #[test]
    fn each_encoding_is_encoded_once_and_kept_apart() {
        let cache = FrameCache::default();
        let mut calls = 0;
        for _ in 0..3 {
            for (encoding, text) in [(*A, "a"), (*B, "b"), (*C, "c")] {
                let frame = cache.get_or_encode(encoding, || {
                    calls += 1;
                    Bytes::from_static(text.as_bytes())
                });
                assert_eq!(frame, text);
            }
        }
        assert_eq!(calls, 3);
        assert_eq!(A.name(), "test-a");
        assert_ne!(*A, *B);
    }

    #[test]
    fn an_encoder_may_ask_for_another_encoding() {
        let cache = FrameCache::default();
        let outer = cache.get_or_encode(*B, || {
            let inner = cache.get_or_encode(*A, || Bytes::from_static(b"inner"));
            Bytes::from(format!("[{}]", std::str::from_utf8(inner).expect("utf8")))
        });
        assert_eq!(outer, "[inner]");
        assert_eq!(cache.find(*A).expect("cached"), "inner");
    }

    #[test]
    fn racing_threads_agree_on_one_frame_per_encoding() {
        let cache = Arc::new(FrameCache::default());
        let barrier = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (cache, barrier) = (cache.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    [*A, *B, *C].map(|e| cache.get_or_encode(e, || Bytes::from(format!("{t}"))).clone())
                })
            })
            .collect();
        let seen: Vec<[Bytes; 3]> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
        for frames in &seen {
            assert_eq!(frames, &seen[0], "every thread returns the stored frame");
        }
    }
}
