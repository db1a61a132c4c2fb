//! Sessions that outlive their connection: parked with their subscriptions and queue, resumed by
//! their owner with nothing lost, or expired. Time is tokio's paused clock, so expiry takes no
//! real time.

use std::time::Duration;

use livehub_core::{
    ChannelFilter, ChannelName, DeliveryTracker, Error, Node, NodeConfig, Payload, ResumeToken,
    SubscribeOptions,
};

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).expect("valid channel")
}

fn n(v: u64) -> Payload {
    Payload::json(v.to_string()).expect("valid json")
}

const TTL: Duration = Duration::from_secs(30);

/// A node with one websocket session subscribed to `a`, parked for [`TTL`] by `owner`.
async fn parked(queue: usize, owner: Option<&str>) -> (Node, String) {
    let node = Node::new(NodeConfig { queue_capacity: queue, ..NodeConfig::default() });
    let rx = node.connect("websocket");
    node.subscribe(rx.session(), &ChannelFilter::Exact(ch("a")), SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert_eq!(node.presence().connections, 1);
    let token = ResumeToken::random();
    assert!(node.detach(token.clone(), rx, DeliveryTracker::default(), owner, TTL), "parked");
    (node, token.as_str().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_parked_session_keeps_its_subscriptions_and_queue_and_is_resumed_whole() {
    let (node, token) = parked(16, Some("alice")).await;
    assert_eq!(node.presence().connections, 0, "a parked session is no connection");
    assert_eq!(node.subscribers(&ch("a")), 1, "but it is still subscribed");
    for v in 1..=3 {
        node.publish(&ch("a"), n(v), None).await.expect("publish");
    }
    tokio::time::advance(TTL / 2).await;
    let mut resumed = node.resume(&token, Some("alice")).expect("resumed");
    let mut offsets = Vec::new();
    while let Some(p) = resumed.receiver.try_recv() {
        offsets.push(p.position.offset);
    }
    assert_eq!(offsets, [1, 2, 3], "everything published while parked, in order");
    assert_eq!(node.presence().connections, 1);
    assert_eq!(node.detached_sessions(), 0);
    // Resumed once: the token is spent.
    assert_eq!(node.resume(&token, Some("alice")).err(), Some(Error::SessionNotFound));
    // Its expiry no longer applies.
    tokio::time::advance(TTL).await;
    tokio::task::yield_now().await;
    node.publish(&ch("a"), n(4), None).await.expect("publish");
    assert_eq!(resumed.receiver.try_recv().map(|p| p.position.offset), Some(4));
}

#[tokio::test(start_paused = true)]
async fn only_the_owner_resumes_and_a_refusal_does_not_spend_the_session() {
    let (node, token) = parked(16, Some("alice")).await;
    for (token, owner) in [(token.as_str(), Some("mallory")), (token.as_str(), None), ("0123", Some("alice"))]
    {
        assert_eq!(node.resume(token, owner).err(), Some(Error::SessionNotFound), "{owner:?}");
    }
    assert!(node.resume(&token, Some("alice")).is_ok());
    let (anonymous, token) = parked(16, None).await;
    assert_eq!(anonymous.resume(&token, Some("alice")).err(), Some(Error::SessionNotFound));
    assert!(anonymous.resume(&token, None).is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_unresumed_session_expires_and_leaves_nothing_behind() {
    let (node, token) = parked(16, None).await;
    tokio::time::advance(TTL + Duration::from_secs(1)).await;
    // The expiry task runs on this runtime: let it.
    tokio::task::yield_now().await;
    assert_eq!(node.resume(&token, None).err(), Some(Error::SessionNotFound));
    assert_eq!(node.subscribers(&ch("a")), 0);
    assert_eq!(node.detached_sessions(), 0);
    assert_eq!(node.presence().connections, 0);
}

#[tokio::test(start_paused = true)]
async fn a_session_whose_queue_overflowed_while_parked_cannot_be_resumed() {
    let (node, token) = parked(2, None).await;
    for v in 1..=3 {
        node.publish(&ch("a"), n(v), None).await.expect("publish");
    }
    assert_eq!(node.resume(&token, None).err(), Some(Error::SessionNotFound));
    assert_eq!(node.subscribers(&ch("a")), 0, "it ended for good");
}
