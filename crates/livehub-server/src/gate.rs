//! A connection task's rare wake-up sources, polled only when one of them woke the task.
//!
//! A connection's task wakes for every batch of publications, and a `select!` would then poll
//! every other source as well, only to find it not ready: the socket's read side through
//! tungstenite, the ping timer, the disconnect and shutdown signals. At fan-out rates that pending
//! round is a large share of the task's time. Sources polled through a [`Gate`] register the
//! gate's own waker instead, which records that one of them fired before it wakes the task; while
//! nothing has, the gate answers `Pending` without polling them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// A group of wake-up sources polled together, through their own waker.
pub(crate) struct Gate {
    shared: Arc<Shared>,
    /// The waker the sources are polled with; made once.
    waker: Waker,
}

struct Shared {
    /// Whether a source has woken since the group was last polled (or was ready then, and so may
    /// be ready again without waking).
    woken: AtomicBool,
    /// The task to wake.
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// A gate whose first poll polls the sources.
    pub(crate) fn new() -> Self {
        let shared = Arc::new(Shared { woken: AtomicBool::new(true), task: AtomicWaker::new() });
        let waker = Waker::from(shared.clone());
        Self { shared, waker }
    }

    /// Polls the whole group with `poll` if one of its sources woke since the last call, and
    /// answers `Pending` without polling otherwise.
    ///
    /// `poll` must poll every source of the group, each through the context it is given.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.shared.task.register(cx.waker());
        if !self.shared.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.poll_sources(poll)
    }

    /// Polls part of the group with `poll` if one of its sources woke, leaving the record of it
    /// for [`poll`](Self::poll), which must poll them all.
    pub(crate) fn poll_part<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.shared.task.register(cx.waker());
        if !self.shared.woken.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        self.poll_sources(poll)
    }

    fn poll_sources<T>(&self, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        let ready = poll(&mut Context::from_waker(&self.waker));
        if ready.is_ready() {
            // A source that was ready may be ready again at once (tungstenite holding a second
            // message, say) and would not wake for it.
            self.shared.woken.store(true, Ordering::Release);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A task waker that counts its wakes.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn sources_are_polled_only_when_one_woke_or_was_ready() {
        let task = Arc::new(Task::default());
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        let gate = Gate::new();
        // What the source saw: how often it was polled, and the waker it was polled with.
        let polls = std::cell::Cell::new(0);
        let source = std::cell::RefCell::new(None::<Waker>);
        let pending = |cx: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            *source.borrow_mut() = Some(cx.waker().clone());
            Poll::<()>::Pending
        };
        let wake_source = || source.borrow_mut().take().expect("registered").wake();

        assert!(gate.poll(&mut cx, pending).is_pending(), "the first poll polls");
        assert!(gate.poll(&mut cx, pending).is_pending(), "nothing woke: not polled");
        assert_eq!(polls.get(), 1);

        wake_source();
        assert_eq!(task.0.load(Ordering::Relaxed), 1, "a source's wake wakes the task");
        assert!(gate.poll_part(&mut cx, pending).is_pending());
        assert!(gate.poll(&mut cx, pending).is_pending(), "poll_part leaves the wake for poll");
        assert!(gate.poll(&mut cx, pending).is_pending());
        assert_eq!(polls.get(), 3);

        assert_eq!(gate.poll(&mut cx, |_| Poll::Ready(7)), Poll::Pending, "nothing woke");
        wake_source();
        assert_eq!(gate.poll(&mut cx, |_| Poll::Ready(7)), Poll::Ready(7));
        assert!(gate.poll(&mut cx, pending).is_pending(), "ready last time: polled again");
        assert_eq!(polls.get(), 4);
    }
}
