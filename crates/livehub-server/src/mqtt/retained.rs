//! Retained messages: the last retained publication per topic, sent to new subscribers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use livehub_core::{ChannelFilter, ChannelName};
use livehub_mqtt::{Properties, QoS};
use parking_lot::Mutex;

/// One retained message.
#[derive(Debug)]
pub(crate) struct Retained {
    /// Its topic.
    pub(crate) topic: ChannelName,
    /// Its payload.
    pub(crate) payload: Bytes,
    /// The QoS it was published with.
    pub(crate) qos: QoS,
    /// When it expires (v5 message expiry).
    pub(crate) expires_at: Option<Instant>,
    /// The properties passed on to subscribers.
    pub(crate) properties: Properties,
}

/// The retained messages by topic. A subscription with a wildcard scans them all: retained
/// topics are device states, thousands rather than millions.
#[derive(Default)]
pub(crate) struct RetainedStore {
    by_topic: Mutex<HashMap<ChannelName, Arc<Retained>>>,
}

impl RetainedStore {
    /// Keeps `message` as its topic's retained message; an empty payload clears the topic.
    pub(crate) fn set(&self, message: Retained) {
        let mut by_topic = self.by_topic.lock();
        if message.payload.is_empty() {
            by_topic.remove(&message.topic);
        } else {
            by_topic.insert(message.topic.clone(), Arc::new(message));
        }
    }

    /// The unexpired retained messages `filter` matches.
    pub(crate) fn matching(&self, filter: &ChannelFilter) -> Vec<Arc<Retained>> {
        let now = Instant::now();
        let mut by_topic = self.by_topic.lock();
        by_topic.retain(|_, m| m.expires_at.is_none_or(|at| at > now));
        match filter {
            ChannelFilter::Exact(name) => by_topic.get(name).cloned().into_iter().collect(),
            ChannelFilter::Wildcard(_) => {
                by_topic.values().filter(|m| filter.matches(&m.topic)).cloned().collect()
            }
        }
    }

    /// How many topics hold a retained message.
    pub(crate) fn len(&self) -> usize {
        self.by_topic.lock().len()
    }
}
