//! Sessions that outlive their connection: parked when the connection goes away, taken over by a
//! later connection that proves it owns them, or expired.
//!
//! A parked session keeps its subscriptions in the hub, so publications keep arriving in its
//! bounded queue; a queue that fills up while parked disconnects the session as a slow consumer,
//! and it can no longer be resumed (the client recovers from history instead). MQTT persistent
//! sessions and SignalR stateful reconnect are built on this.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use crate::error::Error;
use crate::session::{DeliveryTracker, SessionReceiver};

/// Proves ownership of a parked session: 128 random bits, shown to the client that owns the
/// session and to no one else.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResumeToken(String);

impl ResumeToken {
    /// A fresh token, for a transport to give its client before the session is ever parked.
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// The token as the client sends it back.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ResumeToken {
    /// Never printed whole: it is a credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResumeToken({}…)", &self.0[..self.0.len().min(4)])
    }
}

/// A session taken over by a new connection.
pub struct Resumed {
    /// The session, with its subscriptions and whatever was queued while it was parked.
    pub receiver: SessionReceiver,
    /// What the session had delivered, so nothing is sent twice.
    pub tracker: DeliveryTracker,
}

struct Parked {
    receiver: SessionReceiver,
    tracker: DeliveryTracker,
    /// The subject that must resume it; `None` for an anonymous session.
    owner: Option<String>,
}

/// The parked sessions of a node.
pub(crate) struct DetachedSessions {
    parked: Mutex<HashMap<ResumeToken, Parked>>,
    max: usize,
}

impl DetachedSessions {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { parked: Mutex::new(HashMap::new()), max })
    }

    /// Parks `receiver` for `ttl` under `token`; false when the node already holds its maximum
    /// of parked sessions (the session then ends at once, as it would have without parking).
    pub(crate) fn park(
        self: &Arc<Self>,
        token: ResumeToken,
        receiver: SessionReceiver,
        tracker: DeliveryTracker,
        owner: Option<&str>,
        ttl: Duration,
    ) -> bool {
        // Taken now, not when the expiry task first runs, which may be later.
        let deadline = tokio::time::Instant::now() + ttl;
        {
            let mut parked = self.parked.lock();
            if parked.len() >= self.max || parked.contains_key(&token) {
                return false;
            }
            receiver.park();
            let owner = owner.map(str::to_owned);
            parked.insert(token.clone(), Parked { receiver, tracker, owner });
        }
        tokio::spawn(expire(Arc::downgrade(self), token, deadline));
        true
    }

    /// Takes over the session parked under `token`, for a connection of `owner`. The same error
    /// for an unknown token, an expired one, another owner's and a session that overflowed while
    /// parked: a guesser learns nothing.
    pub(crate) fn resume(&self, token: &str, owner: Option<&str>) -> Result<Resumed, Error> {
        let mut parked = self.parked.lock();
        let key = ResumeToken(token.to_owned());
        match parked.get(&key) {
            Some(p) if p.owner.as_deref() == owner => {}
            _ => return Err(Error::SessionNotFound),
        }
        let Some(Parked { receiver, tracker, .. }) = parked.remove(&key) else {
            return Err(Error::SessionNotFound);
        };
        drop(parked);
        // Fell too far behind while parked: dropping it here ends it for good.
        if receiver.session().disconnect_reason().is_some() {
            return Err(Error::SessionNotFound);
        }
        receiver.unpark();
        Ok(Resumed { receiver, tracker })
    }

    /// How many sessions are parked now.
    pub(crate) fn len(&self) -> usize {
        self.parked.lock().len()
    }
}

/// Ends the session parked under `token` at `deadline`, unless it was resumed meanwhile.
async fn expire(sessions: Weak<DetachedSessions>, token: ResumeToken, deadline: tokio::time::Instant) {
    tokio::time::sleep_until(deadline).await;
    let Some(sessions) = sessions.upgrade() else { return };
    // Dropped outside the lock: dropping a receiver takes the hub's locks.
    let expired = sessions.parked.lock().remove(&token);
    drop(expired);
}
