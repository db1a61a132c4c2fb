//! What MQTT says about a publication that a channel does not keep: its QoS, retain flag,
//! expiry, properties and publishing connection, looked up by the publication's payload.
//!
//! A channel's publication is data and a position; MQTT subscribers need more (the lower of the
//! two QoS, no local, retain as published, message expiry, user properties). The broker keeps
//! that beside the channel rather than in core, keyed by the payload's buffer: the publication
//! carries the very `Bytes` the MQTT connection made, and the entry holds a clone of them, so
//! the address cannot be reused by other data while the entry exists. Entries are evicted
//! oldest first past [`MAX_ENTRIES`] or [`MAX_BYTES`]; a publication whose entry is gone is
//! delivered like one from another transport (at the subscription's QoS, without properties).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use livehub_core::{ClientId, Payload};
use livehub_mqtt::{Properties, QoS};
use parking_lot::Mutex;

/// Most publications remembered: minutes of a busy broker, far more than a queue holds.
const MAX_ENTRIES: usize = 65_536;

/// Most payload bytes the entries keep alive.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// What MQTT said about one publication.
#[derive(Debug)]
pub(crate) struct Meta {
    /// The QoS it was published with.
    pub(crate) qos: QoS,
    /// Whether it was published retained.
    pub(crate) retain: bool,
    /// When it expires (v5 message expiry).
    pub(crate) expires_at: Option<Instant>,
    /// The properties passed on to subscribers.
    pub(crate) properties: Properties,
    /// The connection that published it (for no local).
    pub(crate) origin: ClientId,
}

/// The table of [`Meta`] by payload.
#[derive(Default)]
pub(crate) struct MetaTable {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_key: HashMap<(usize, usize), (Bytes, Arc<Meta>)>,
    order: VecDeque<(usize, usize)>,
    bytes: usize,
}

fn key(bytes: &Bytes) -> (usize, usize) {
    (bytes.as_ptr() as usize, bytes.len())
}

fn payload_bytes(payload: &Payload) -> &Bytes {
    match payload {
        Payload::Json(b) | Payload::Binary(b) => b,
    }
}

impl MetaTable {
    /// Remembers `meta` for the publication that will carry `payload`. Empty payloads share one
    /// address, so they are not remembered.
    pub(crate) fn insert(&self, payload: &Payload, meta: Meta) {
        let bytes = payload_bytes(payload);
        if bytes.is_empty() {
            return;
        }
        let mut state = self.state.lock();
        let k = key(bytes);
        if state.by_key.insert(k, (bytes.clone(), Arc::new(meta))).is_none() {
            state.order.push_back(k);
            state.bytes += bytes.len();
        }
        while state.order.len() > MAX_ENTRIES || state.bytes > MAX_BYTES {
            let Some(oldest) = state.order.pop_front() else { break };
            if let Some((b, _)) = state.by_key.remove(&oldest) {
                state.bytes -= b.len();
            }
        }
    }

    /// Forgets the entry for `payload` (its publish failed).
    pub(crate) fn remove(&self, payload: &Payload) {
        let bytes = payload_bytes(payload);
        let mut state = self.state.lock();
        if let Some((b, _)) = state.by_key.remove(&key(bytes)) {
            state.bytes -= b.len();
            let k = key(bytes);
            state.order.retain(|o| *o != k);
        }
    }

    /// What MQTT said about the publication carrying `payload`, if it came from MQTT and is
    /// still remembered.
    pub(crate) fn get(&self, payload: &Payload) -> Option<Arc<Meta>> {
        let bytes = payload_bytes(payload);
        if bytes.is_empty() {
            return None;
        }
        self.state.lock().by_key.get(&key(bytes)).map(|(_, meta)| meta.clone())
    }
}
