//! Watching a client's WebSocket frames go by, to bound messages sent in fragments.
//!
//! tungstenite reassembles a fragmented message inside, and only its size limit bounds it: a
//! client that starts a message and never finishes it, while answering pings, pinned twice the
//! message limit for ever. [`Watched`] reads frame headers as the bytes pass (nothing is copied or
//! unmasked): when a message is unfinished since when, and how many bytes every connection's
//! unfinished messages hold together, so a connection can be closed at a deadline and when the
//! server's reassembly budget is spent.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Most bytes one connection's unfinished message counts for: far above any message limit, and
/// low enough that a million connections at it cannot overflow the shared count.
const MAX_COUNTED: usize = 1 << 40;

/// Bytes held in unfinished fragmented messages, all connections together.
#[derive(Debug)]
pub(crate) struct ReassemblyBudget {
    held: AtomicUsize,
    max: usize,
}

impl ReassemblyBudget {
    /// A budget of `max` bytes; 0 turns it off.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { held: AtomicUsize::new(0), max })
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// A connection's read side with its frames watched.
pub(crate) struct Watched<I> {
    io: I,
    frames: FrameWatch,
}

/// Where the watcher is in the stream of frames.
#[derive(Debug)]
enum Position {
    /// Reading a frame header: the bytes so far.
    Header { bytes: [u8; 14], have: usize },
    /// Skipping a frame's payload.
    Payload { left: u64 },
}

#[derive(Debug)]
struct FrameWatch {
    position: Position,
    /// When the unfinished message started, if one is.
    started: Option<Instant>,
    /// Payload bytes of the unfinished message so far, counted in the budget.
    held: usize,
    /// Whether this connection's fragments took the budget past its limit.
    over_budget: bool,
    budget: Arc<ReassemblyBudget>,
}

impl<I> Watched<I> {
    pub(crate) fn new(io: I, budget: Arc<ReassemblyBudget>) -> Self {
        let frames = FrameWatch {
            position: Position::Header { bytes: [0; 14], have: 0 },
            started: None,
            held: 0,
            over_budget: false,
            budget,
        };
        Self { io, frames }
    }

    /// The connection underneath.
    pub(crate) fn get_ref(&self) -> &I {
        &self.io
    }

    /// When the message the client is sending in fragments started, if it is unfinished.
    pub(crate) fn unfinished_since(&self) -> Option<Instant> {
        self.frames.started
    }

    /// Whether this connection's unfinished message took the server's budget past its limit.
    pub(crate) fn over_budget(&self) -> bool {
        self.frames.over_budget
    }
}

impl FrameWatch {
    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.position {
                Position::Payload { left } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    // `n` is at most `bytes.len()`.
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.position = Position::Header { bytes: [0; 14], have: 0 };
                    }
                }
                Position::Header { bytes: header, have } => {
                    header[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    if let Some((fin, opcode, length)) = parse_header(&header[..*have]) {
                        self.frame(fin, opcode, length);
                        self.position = if length == 0 {
                            Position::Header { bytes: [0; 14], have: 0 }
                        } else {
                            Position::Payload { left: length }
                        };
                    }
                }
            }
        }
    }

    /// A frame header went by.
    fn frame(&mut self, fin: bool, opcode: u8, length: u64) {
        // Control frames (opcode 8 and above) may come between fragments and change nothing.
        if opcode >= 8 {
            return;
        }
        if opcode != 0 {
            // A new text or binary message: one that interrupts an unfinished one is a protocol
            // error tungstenite reports; forget the old one.
            self.release();
        }
        if fin {
            self.release();
            return;
        }
        self.started.get_or_insert_with(Instant::now);
        // A header may claim any length up to 2^64; tungstenite refuses what passes the message
        // limit, but the header is counted first. Capped per connection, the sum over every
        // connection the process can hold stays far from overflowing the shared counter.
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let before = self.held;
        self.held = self.held.saturating_add(length).min(MAX_COUNTED);
        let added = self.held - before;
        let total = self.budget.held.fetch_add(added, Ordering::Relaxed).saturating_add(added);
        if self.budget.max > 0 && total > self.budget.max {
            self.over_budget = true;
        }
    }

    fn release(&mut self) {
        self.started = None;
        self.budget.held.fetch_sub(std::mem::take(&mut self.held), Ordering::Relaxed);
    }
}

impl Drop for FrameWatch {
    fn drop(&mut self) {
        self.release();
    }
}

/// FIN, opcode and payload length of a complete frame header, or `None` while more is needed.
fn parse_header(header: &[u8]) -> Option<(bool, u8, u64)> {
    let (&first, &second) = (header.first()?, header.get(1)?);
    let masked = second & 0x80 != 0;
    let (length, extended) = match second & 0x7f {
        126 => (u64::from(u16::from_be_bytes([*header.get(2)?, *header.get(3)?])), 2),
        127 => {
            let bytes: [u8; 8] = header.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 8)
        }
        n => (u64::from(n), 0),
    };
    let needed = 2 + extended + if masked { 4 } else { 0 };
    (header.len() >= needed).then_some((first & 0x80 != 0, first & 0x0f, length))
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.frames.observe(&buf.filled()[before..]);
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Feeds `bytes` to a frame watcher in pieces of every size the first byte picks, as reads would
/// deliver them, and checks that the budget it held is given back: for the fuzz target.
pub(crate) fn fuzz_frames(bytes: &[u8]) {
    let budget = ReassemblyBudget::new(1 << 20);
    let mut watched = Watched::new((), budget.clone());
    let step = usize::from(bytes.first().copied().unwrap_or(1)).max(1);
    for piece in bytes.chunks(step) {
        watched.frames.observe(piece);
    }
    drop(watched);
    assert_eq!(budget.held(), 0, "a connection gone gives back what it held");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend_from_slice(payload);
        out
    }

    fn watch(budget: &Arc<ReassemblyBudget>) -> FrameWatch {
        Watched::new((), budget.clone()).frames
    }

    #[tokio::test]
    async fn an_unfinished_message_is_seen_and_counted_until_its_last_fragment() {
        let budget = ReassemblyBudget::new(0);
        let mut w = watch(&budget);
        w.observe(&frame(true, 1, b"whole"));
        assert!(w.started.is_none());
        // Split anywhere, even inside headers: a byte at a time.
        for byte in frame(false, 2, &[7; 300]) {
            w.observe(&[byte]);
        }
        assert!(w.started.is_some());
        assert_eq!(budget.held(), 300);
        w.observe(&frame(true, 9, b"ping in between"));
        w.observe(&frame(false, 0, &[7; 70_000]));
        assert_eq!(budget.held(), 70_300);
        w.observe(&frame(true, 0, b"end"));
        assert!(w.started.is_none());
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn headers_claiming_absurd_lengths_cannot_corrupt_the_shared_count() {
        // Found by the fuzzer: two such headers wrapped the shared counter.
        let budget = ReassemblyBudget::new(0);
        let mut w = watch(&budget);
        let mut huge = vec![0x01, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[1, 2, 3, 4]);
        w.observe(&huge);
        let mut again = watch(&budget);
        again.observe(&huge);
        assert_eq!(budget.held(), 2 * MAX_COUNTED);
        drop((w, again));
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn the_budget_is_shared_and_given_back_when_a_connection_goes() {
        let budget = ReassemblyBudget::new(1000);
        let mut a = watch(&budget);
        let mut b = watch(&budget);
        a.observe(&frame(false, 1, &[1; 600]));
        assert!(!a.over_budget);
        b.observe(&frame(false, 1, &[1; 600]));
        assert!(b.over_budget, "the second takes it past 1000");
        drop(a);
        assert_eq!(budget.held(), 600);
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
