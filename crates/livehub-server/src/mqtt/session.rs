//! MQTT sessions: what outlives a connection (subscriptions, messages in flight and queued),
//! and the store of the sessions of clients that are offline.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livehub_core::{ChannelFilter, Publication, SessionReceiver};
use livehub_mqtt::{Publish, SubscriptionOptions};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// How long a connection taking over a client identifier waits for the old connection to hand
/// its session back before starting without it.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// One subscription of a session.
#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    /// What the hub routes.
    pub(crate) filter: ChannelFilter,
    /// The options it was made with.
    pub(crate) options: SubscriptionOptions,
    /// Its v5 subscription identifier.
    pub(crate) id: Option<u32>,
    /// A `$share/...` subscription.
    pub(crate) shared: bool,
}

/// A QoS 1 or 2 publication sent and not yet acknowledged.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Waiting for `PUBACK` or `PUBREC`; kept to be sent again (DUP set) on reconnect.
    Published(Box<Publish>),
    /// `PUBREC` came and `PUBREL` went: waiting for `PUBCOMP`.
    Released,
}

/// A message waiting to be sent.
#[derive(Debug)]
pub(crate) enum Queued {
    /// A QoS 0 `PUBLISH` without properties of its own, encoded: the publication's frame that
    /// every subscriber of the same version and retain flag shares.
    Frame(Bytes),
    /// A `PUBLISH` of this client's own (QoS 1 or 2, or properties only it gets).
    Publish(Box<Publish>),
}

/// Where a session's shared subscription groups hand it publications: made on its first
/// `$share` subscription, so that the sessions of other clients carry no channel.
pub(crate) struct Inbox {
    /// Cloned into each group the session joins.
    pub(crate) tx: mpsc::Sender<Arc<Publication>>,
    /// What the groups handed it.
    pub(crate) rx: mpsc::Receiver<Arc<Publication>>,
}

/// Everything of one client that can outlive its connection.
///
/// Its collections allocate on first use: most clients never subscribe to a shared group, send
/// QoS 2 or fill their in-flight window, and an idle connection should cost little.
pub(crate) struct MqttSession {
    /// The node's session: its subscriptions in the hub and its queue of publications.
    pub(crate) receiver: SessionReceiver,
    /// By the filter text as the client wrote it.
    pub(crate) subscriptions: HashMap<String, Subscription>,
    /// Sent and unacknowledged, by packet identifier.
    pub(crate) outgoing: BTreeMap<u16, Outgoing>,
    /// Waiting for room in the client's in-flight window (or behind messages that are).
    pub(crate) pending: VecDeque<Queued>,
    /// QoS 2 publications received and not yet released (`PUBREL`): received again, they are
    /// acknowledged without being published twice.
    pub(crate) incoming: HashSet<u16>,
    /// The last packet identifier used.
    pub(crate) last_id: u16,
    /// Its member number in shared subscription groups.
    pub(crate) member: u64,
    /// Its shared subscription groups' hand-offs, once it has joined one.
    pub(crate) inbox: Option<Inbox>,
}

impl MqttSession {
    /// A fresh session over `receiver`.
    pub(crate) fn new(receiver: SessionReceiver, member: u64) -> Self {
        Self {
            member,
            inbox: None,
            receiver,
            subscriptions: HashMap::new(),
            outgoing: BTreeMap::new(),
            pending: VecDeque::new(),
            incoming: HashSet::new(),
            last_id: 0,
        }
    }

    /// Where its shared subscription groups hand it publications, made on first use.
    pub(crate) fn inbox_sender(&mut self) -> mpsc::Sender<Arc<Publication>> {
        let inbox = self.inbox.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(super::shared::MEMBER_CAPACITY);
            Inbox { tx, rx }
        });
        inbox.tx.clone()
    }

    /// The next packet identifier not in flight, or `None` when all 65,535 are.
    pub(crate) fn next_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_id = self.last_id.checked_add(1).unwrap_or(1);
            if !self.outgoing.contains_key(&self.last_id) {
                return Some(self.last_id);
            }
        }
        None
    }
}

/// Where a client identifier's session is.
enum Entry {
    /// A connection has it; `kick` asks that connection to hand it back (a takeover).
    Connected { generation: u64, kick: Arc<Notify> },
    /// Offline, until `expires`.
    Parked { session: Box<MqttSession>, expires: Option<Instant> },
}

/// The sessions by client identifier.
#[derive(Default)]
pub(crate) struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    next_generation: Mutex<u64>,
}

/// A connection's claim on its client identifier.
pub(crate) struct Claim {
    /// Tells this claim apart from a later connection's.
    pub(crate) generation: u64,
    /// Notified when another connection takes the identifier over.
    pub(crate) kick: Arc<Notify>,
    /// The session it found, unless it asked for a clean start (or none was kept).
    pub(crate) session: Option<Box<MqttSession>>,
}

impl Sessions {
    /// Claims `client_id` for a new connection: a connection holding it is asked to hand it
    /// over (and waited for up to [`TAKEOVER_WAIT`]), an offline session is taken, unless
    /// `clean_start` discards it.
    pub(crate) async fn claim(&self, client_id: &str, clean_start: bool) -> Claim {
        let generation = {
            let mut next = self.next_generation.lock();
            *next += 1;
            *next
        };
        let deadline = Instant::now() + TAKEOVER_WAIT;
        loop {
            {
                let mut entries = self.entries.lock();
                let kick = Arc::new(Notify::new());
                let connected = Entry::Connected { generation, kick: kick.clone() };
                match entries.get(client_id) {
                    Some(Entry::Connected { kick: old, .. }) if Instant::now() < deadline => {
                        old.notify_one();
                    }
                    _ => {
                        let previous = entries.insert(client_id.to_owned(), connected);
                        let session = match previous {
                            Some(Entry::Parked { session, expires })
                                if !clean_start && expires.is_none_or(|at| at > Instant::now()) =>
                            {
                                Some(session)
                            }
                            _ => None,
                        };
                        return Claim { generation, kick, session };
                    }
                }
            }
            // Rare (a takeover): a short poll keeps the store free of waiter bookkeeping.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Gives `client_id` back after the connection of `generation` ended: `session` is kept for
    /// `expiry` when both are given, otherwise the client's state ends here.
    pub(crate) fn release(
        &self,
        client_id: &str,
        generation: u64,
        session: Option<Box<MqttSession>>,
        expiry: Option<Duration>,
    ) {
        let mut entries = self.entries.lock();
        if !matches!(entries.get(client_id), Some(Entry::Connected { generation: g, .. }) if *g == generation)
        {
            return;
        }
        match (session, expiry) {
            (Some(session), Some(expiry)) if !expiry.is_zero() => {
                let expires = Instant::now().checked_add(expiry);
                entries.insert(client_id.to_owned(), Entry::Parked { session, expires });
            }
            _ => {
                entries.remove(client_id);
            }
        }
    }

    /// Drops offline sessions whose time is up.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        self.entries.lock().retain(|_, entry| match entry {
            Entry::Parked { expires: Some(at), .. } => *at > now,
            _ => true,
        });
    }

    /// Offline sessions kept now.
    pub(crate) fn parked(&self) -> usize {
        self.entries.lock().values().filter(|e| matches!(e, Entry::Parked { .. })).count()
    }
}
