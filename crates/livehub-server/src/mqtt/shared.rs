//! Shared subscriptions (`$share/{group}/{filter}`): one node session per group receives the
//! filter's publications and hands each to one member, round robin.

use std::collections::HashMap;
use std::sync::Arc;

use livehub_core::{ChannelFilter, Node, Publication, SubscribeOptions};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Publications a member's hand-off channel holds; a member whose channel is full is skipped
/// for the next one (as is an offline member's, once full).
pub(crate) const MEMBER_CAPACITY: usize = 1024;

/// Publications a group takes from its queue at a time.
const BATCH: usize = 64;

/// Where a member's share of a group's publications goes.
#[derive(Clone)]
pub(crate) struct Member {
    /// The member's session number.
    pub(crate) id: u64,
    /// Its hand-off channel.
    pub(crate) tx: mpsc::Sender<Arc<Publication>>,
}

struct Group {
    members: Mutex<(Vec<Member>, usize)>,
    stop: CancellationToken,
}

/// The groups, by their `$share/...` text.
#[derive(Default)]
pub(crate) struct Shared {
    groups: Mutex<HashMap<String, Arc<Group>>>,
}

impl Shared {
    /// Adds `member` to the group `text` names (made, and subscribed to `filter`, when it is the
    /// first).
    pub(crate) async fn join(
        &self,
        text: &str,
        filter: &ChannelFilter,
        member: Member,
        node: &Node,
    ) -> Result<(), livehub_core::Error> {
        if let Some(group) = self.groups.lock().get(text) {
            group.members.lock().0.push(member);
            return Ok(());
        }
        let mut receiver = node.connect_ephemeral(super::TRANSPORT);
        node.subscribe(receiver.session(), filter, SubscribeOptions::default()).await?;
        let group = Arc::new(Group {
            members: Mutex::new((vec![member.clone()], 0)),
            stop: CancellationToken::new(),
        });
        {
            let mut groups = self.groups.lock();
            if let Some(existing) = groups.get(text) {
                // Another member made it meanwhile: join that one.
                existing.members.lock().0.push(member);
                return Ok(());
            }
            groups.insert(text.to_owned(), group.clone());
        }
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                tokio::select! {
                    () = group.stop.cancelled() => return,
                    _ = receiver.recv_many(&mut batch, BATCH) => {}
                }
                for publication in batch.drain(..) {
                    group.hand_off(publication);
                }
            }
        });
        Ok(())
    }

    /// Removes the member `id` from the group `text`; the last one out ends the group.
    pub(crate) fn leave(&self, text: &str, id: u64) {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get(text) else { return };
        let empty = {
            let mut members = group.members.lock();
            members.0.retain(|m| m.id != id);
            members.0.is_empty()
        };
        if empty {
            group.stop.cancel();
            groups.remove(text);
        }
    }
}

impl Group {
    /// Gives `publication` to the next member with room; members that are gone are dropped.
    fn hand_off(&self, publication: Arc<Publication>) {
        let mut members = self.members.lock();
        let (list, next) = &mut *members;
        list.retain(|m| !m.tx.is_closed());
        for i in 0..list.len() {
            let at = (*next + i) % list.len();
            if list[at].tx.try_send(publication.clone()).is_ok() {
                *next = at + 1;
                return;
            }
        }
    }
}
