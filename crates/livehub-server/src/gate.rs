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
use livehub_core::Session;

/// A group of wake-up sources polled together, through their own waker.
pub(crate) struct Gate {
    record: Record,
    /// The waker the sources are polled with; made once.
    waker: Waker,
}

/// Where a gate records that one of its sources woke.
enum Record {
    /// In a place of its own.
    Own {
        shared: Arc<Shared>,
        /// The task waker last given to `shared.task`. Registering costs two atomic operations
        /// on every wake-up; it is needed only when the task's waker changed, or when a source's
        /// wake took it out.
        registered: Option<Waker>,
    },
    /// Next to a session's queue (see [`Session::source_waker`]): a task woken for publications
    /// then finds the record in memory it has just read, instead of in another cache line.
    /// Sources and publications share the queue's waker slot, so a task waiting on a slow
    /// client's write is also woken by publications, once per registration; it finds nothing
    /// to do and waits again.
    Session(Session),
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
        Self { record: Record::Own { shared, registered: None }, waker }
    }

    /// A gate for the task that serves `session`, keeping its record next to the session's queue.
    /// Its first poll polls the sources.
    pub(crate) fn for_session(session: &Session) -> Self {
        let waker = session.source_waker();
        // The record may have been cleared by an earlier task over the same session (an MQTT
        // session resumed by a new connection): set it, so these sources register.
        waker.wake_by_ref();
        Self { waker, record: Record::Session(session.clone()) }
    }

    /// Polls the whole group with `poll` if one of its sources woke since the last call, and
    /// answers `Pending` without polling otherwise.
    ///
    /// `poll` must poll every source of the group, each through the context it is given.
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if !self.woken(cx, true) {
            return Poll::Pending;
        }
        self.poll_sources(poll)
    }

    /// Polls part of the group with `poll` if one of its sources woke, leaving the record of it
    /// for [`poll`](Self::poll), which must poll them all.
    pub(crate) fn poll_part<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if !self.woken(cx, false) {
            return Poll::Pending;
        }
        self.poll_sources(poll)
    }

    /// Whether a source woke since the record was last cleared; clears it if `clear`. From now
    /// on, a source's wake reaches the task polling with `cx`.
    fn woken(&mut self, cx: &Context<'_>, clear: bool) -> bool {
        let (shared, registered) = match &mut self.record {
            Record::Session(session) => return session.poll_sources_woken(cx, clear),
            Record::Own { shared, registered } => (shared, registered),
        };
        // A source's wake sets `woken` before it takes the registered waker out. So when `woken`
        // is found unset, the waker registered last is still there, or a wake already on its way
        // will wake it and the task is polled again: only a changed waker needs registering.
        let woken = shared.woken.load(Ordering::Acquire);
        if woken || !registered.as_ref().is_some_and(|r| r.will_wake(cx.waker())) {
            shared.task.register(cx.waker());
            match registered {
                Some(registered) => registered.clone_from(cx.waker()),
                None => *registered = Some(cx.waker().clone()),
            }
        }
        // Read (and cleared) after registering: a wake in between woke the waker before.
        if clear {
            shared.woken.swap(false, Ordering::AcqRel)
        } else {
            shared.woken.load(Ordering::Acquire)
        }
    }

    fn poll_sources<T>(&self, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        let ready = poll(&mut Context::from_waker(&self.waker));
        if ready.is_ready() {
            // A source that was ready may be ready again at once (tungstenite holding a second
            // message, say) and would not wake for it.
            self.set_woken();
        }
        ready
    }

    fn set_woken(&self) {
        match &self.record {
            Record::Own { shared, .. } => shared.woken.store(true, Ordering::Release),
            // Through the source waker: sets the record and wakes the task, which is running
            // now and so is polled again anyway.
            Record::Session(_) => self.waker.wake_by_ref(),
        }
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

    // A runtime only because a node spawns its housekeeping tasks.
    #[tokio::test]
    async fn sources_are_polled_only_when_one_woke_or_was_ready() {
        sources_polled_only_when_woken(Gate::new());
        let node = livehub_core::Node::new(livehub_core::NodeConfig::default());
        let receiver = node.connect("test");
        sources_polled_only_when_woken(Gate::for_session(receiver.session()));
    }

    fn sources_polled_only_when_woken(mut gate: Gate) {
        let task = Arc::new(Task::default());
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
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
        assert_eq!(task.0.load(Ordering::Relaxed), 2, "the task's waker was registered again");
        assert_eq!(gate.poll(&mut cx, |_| Poll::Ready(7)), Poll::Ready(7));
        assert!(gate.poll(&mut cx, pending).is_pending(), "ready last time: polled again");
        assert_eq!(polls.get(), 4);

        // Another task polls the gate now: a source's wake goes to it.
        let other = Arc::new(Task::default());
        let other_waker = Waker::from(other.clone());
        assert!(gate.poll(&mut Context::from_waker(&other_waker), pending).is_pending());
        wake_source();
        assert_eq!(other.0.load(Ordering::Relaxed), 1, "the new waker was registered");
    }
}
