//! A sink that records what a broker delivers.

use std::pin::pin;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::broker::PublicationSink;
use crate::channel::ChannelName;
use crate::publication::Publication;

/// How long [`Recorder::wait_for`] waits for deliveries a broker owes before it fails the test:
/// a guard against hanging on a broker that delivers from another task (Redis), not a speed
/// threshold, so it is far above any real delivery time.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(10);

/// Records every publication a broker delivers, in delivery order.
#[derive(Default)]
pub struct Recorder {
    delivered: Mutex<Vec<Arc<Publication>>>,
    more: Notify,
}

impl PublicationSink for Recorder {
    fn deliver(&self, publication: &Arc<Publication>) {
        self.delivered.lock().push(publication.clone());
        self.more.notify_waiters();
    }
}

impl Recorder {
    /// The publications delivered on `channel`, in delivery order.
    pub fn delivered(&self, channel: &ChannelName) -> Vec<Arc<Publication>> {
        self.delivered.lock().iter().filter(|p| p.channel == *channel).cloned().collect()
    }

    /// The offsets delivered on `channel`, in delivery order.
    pub fn offsets(&self, channel: &ChannelName) -> Vec<u64> {
        self.delivered(channel).iter().map(|p| p.position.offset).collect()
    }

    /// Waits until `channel` has had `count` deliveries; panics after [`DELIVERY_WAIT`].
    pub async fn wait_for(&self, channel: &ChannelName, count: usize) {
        let waited = tokio::time::timeout(DELIVERY_WAIT, async {
            loop {
                // Registered before the count is read, so a delivery in between still wakes it.
                let mut more = pin!(self.more.notified());
                more.as_mut().enable();
                if self.delivered(channel).len() >= count {
                    return;
                }
                more.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{channel} had {} deliveries, not {count}, after {DELIVERY_WAIT:?}",
            self.delivered(channel).len()
        );
    }
}
