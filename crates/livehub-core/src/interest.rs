//! The hub's report to the broker of which channels and patterns this node needs: a filter's
//! first local subscriber and its last one leaving, in the order they happened.

use std::collections::VecDeque;
use std::sync::{OnceLock, Weak};

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::channel::ChannelFilter;

/// Changes of interest waiting for the broker, and the broker to tell.
///
/// The hub decides a change under the lock of the filter's map (that is what orders the changes
/// of one filter) but tells the broker after releasing it, so that a broker's call never holds
/// up fan-out, and a broker that asks the hub something back cannot deadlock. The queue carries
/// the order from one to the other: changes enter it under the map's lock and leave it through
/// one caller at a time.
#[derive(Default)]
pub(crate) struct Interest {
    /// Weak: the broker holds the hub (as its sink), and the node holds both.
    broker: OnceLock<Weak<dyn Broker>>,
    pending: Mutex<VecDeque<(ChannelFilter, bool)>>,
    /// Held by the caller that is handing the queue to the broker.
    dispatching: Mutex<()>,
}

impl Interest {
    /// Sets the broker to tell; the first one set stays.
    pub(crate) fn set_broker(&self, broker: Weak<dyn Broker>) {
        let _ = self.broker.set(broker);
    }

    /// Queues a change; returns whether [`dispatch`](Self::dispatch) has something to do. Call it
    /// under the lock that decided the change.
    pub(crate) fn record(&self, filter: &ChannelFilter, interested: bool) -> bool {
        if self.broker.get().is_none() {
            return false;
        }
        self.pending.lock().push_back((filter.clone(), interested));
        true
    }

    /// Tells the broker every queued change, in order. Call it after releasing the hub's locks.
    ///
    /// If another caller is already telling the broker, this one leaves its changes to it rather
    /// than wait: that caller takes every change queued before it lets go, and looks again after.
    pub(crate) fn dispatch(&self) {
        loop {
            let Some(guard) = self.dispatching.try_lock() else { return };
            let broker = self.broker.get().and_then(Weak::upgrade);
            loop {
                let Some((filter, interested)) = self.pending.lock().pop_front() else { break };
                if let Some(broker) = &broker {
                    broker.interest(&filter, interested);
                }
            }
            drop(guard);
            // A change queued after the last look by a caller that found the lock taken would
            // otherwise wait for the next change.
            if self.pending.lock().is_empty() {
                return;
            }
        }
    }
}
