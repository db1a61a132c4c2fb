//! The MQTT broker over real sockets, with raw packets written and read by the codec crate:
//! both versions, each QoS both ways, retained messages, wills, persistent sessions, the
//! bridge to the web transports, and the refusals.

mod common;

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use common::{eventually, TestServer, WAIT};
use livehub_mqtt::{
    decode, encode, Ack, AckKind, ConnAck, Connect, Disconnect, Packet, Properties, Publish, QoS, Reason,
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, Unsubscribe, Version, Will,
};
use livehub_server::Config;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a raw client talks over: TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A raw MQTT client.
struct Client {
    tcp: Box<dyn Io>,
    buf: BytesMut,
    version: Version,
}

fn connect_packet(version: Version, id: &str, clean: bool) -> Connect {
    Connect {
        version,
        client_id: id.to_owned(),
        clean_start: clean,
        keep_alive: 60,
        properties: Properties::default(),
        will: None,
        username: None,
        password: None,
    }
}

impl Client {
    async fn open(addr: SocketAddr, version: Version) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self { tcp: Box::new(tcp), buf: BytesMut::new(), version }
    }

    /// Connects with `connect` and returns the CONNACK.
    async fn connect_with(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let client = Self::open(addr, connect.version).await;
        client.handshake(connect).await
    }

    /// Sends `connect` and returns the CONNACK.
    async fn handshake(mut self, connect: Connect) -> (Self, ConnAck) {
        let mut client = {
            self.version = connect.version;
            self
        };
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Packet::ConnAck(ack) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn connect(addr: SocketAddr, version: Version, id: &str) -> Self {
        let (client, ack) = Self::connect_with(addr, connect_packet(version, id, true)).await;
        assert_eq!(ack.reason, Reason::Success);
        client
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = Vec::new();
        encode(&packet, self.version, &mut out);
        self.tcp.write_all(&out).await.expect("write");
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write");
    }

    /// The next packet, or `None` when the server closed the connection.
    async fn next(&mut self) -> Option<Packet> {
        loop {
            if let Some(decoded) = decode(&self.buf, Some(self.version), usize::MAX).expect("a valid packet")
            {
                self.buf.advance(decoded.len);
                return Some(decoded.packet);
            }
            let read =
                tokio::time::timeout(WAIT, self.tcp.read_buf(&mut self.buf)).await.expect("a packet in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn recv(&mut self) -> Packet {
        self.next().await.expect("a packet, not the end")
    }

    async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<Reason> {
        self.subscribe_with(filter, SubscriptionOptions { qos: Some(qos), ..Default::default() }, None).await
    }

    async fn subscribe_with(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> Vec<Reason> {
        let properties = Properties { subscription_ids: id.into_iter().collect(), ..Properties::default() };
        self.send(Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties,
            filters: vec![(filter.into(), options)],
        }))
        .await;
        match self.recv().await {
            Packet::SubAck(SubAck { packet_id: 1, reasons, .. }) => reasons,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool, id: u16) {
        self.publish_with(topic, payload, qos, retain, id, Properties::default()).await;
    }

    async fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        id: u16,
        properties: Properties,
    ) {
        let packet_id = (qos != QoS::AtMostOnce).then_some(id);
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.into(),
            packet_id,
            properties,
            payload: bytes::Bytes::copy_from_slice(payload),
        };
        self.send(Packet::Publish(publish)).await;
    }

    async fn ack(&mut self, kind: AckKind, packet_id: u16) {
        self.send(Packet::Ack(Ack {
            kind,
            packet_id,
            reason: Reason::Success,
            properties: Properties::default(),
        }))
        .await;
    }

    async fn expect_ack(&mut self, kind: AckKind, packet_id: u16) -> Reason {
        match self.recv().await {
            Packet::Ack(a) if a.kind == kind && a.packet_id == packet_id => a.reason,
            other => panic!("expected {kind:?} {packet_id}, got {other:?}"),
        }
    }

    async fn disconnect(&mut self) {
        self.send(Packet::Disconnect(Disconnect {
            reason: Reason::Success,
            properties: Properties::default(),
        }))
        .await;
    }

    /// Waits until the server closes; returns the v5 DISCONNECT reason if it sent one.
    async fn closed(&mut self) -> Option<Reason> {
        let mut reason = None;
        while let Some(packet) = self.next().await {
            if let Packet::Disconnect(d) = packet {
                reason = Some(d.reason);
            }
        }
        reason
    }

    /// Asserts that nothing arrives for a moment.
    async fn quiet(&mut self) {
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(300), self.tcp.read_buf(&mut self.buf))
                .await;
        assert!(read.is_err() && self.buf.is_empty(), "expected nothing, got {:?}", self.buf);
    }
}

#[tokio::test]
async fn both_versions_connect_and_exchange_each_qos_with_each_other() {
    let server = TestServer::start().await;
    for version in [Version::V311, Version::V5] {
        let mut sub = Client::connect(server.mqtt_addr, version, "sub").await;
        let mut publisher = Client::connect(server.mqtt_addr, version, "pub").await;
        let granted = sub.subscribe("qos/+", QoS::ExactlyOnce).await;
        assert_eq!(granted, vec![Reason::GrantedQos2]);

        publisher.publish("qos/0", b"zero", QoS::AtMostOnce, false, 0).await;
        let p = sub.recv_publish().await;
        assert_eq!((p.topic.as_str(), &p.payload[..], p.qos), ("qos/0", &b"zero"[..], QoS::AtMostOnce));

        publisher.publish("qos/1", b"one", QoS::AtLeastOnce, false, 10).await;
        assert_eq!(publisher.expect_ack(AckKind::PubAck, 10).await, Reason::Success);
        let p = sub.recv_publish().await;
        assert_eq!((p.qos, &p.payload[..]), (QoS::AtLeastOnce, &b"one"[..]));
        sub.ack(AckKind::PubAck, p.packet_id.expect("an id")).await;

        publisher.publish("qos/2", b"two", QoS::ExactlyOnce, false, 11).await;
        publisher.expect_ack(AckKind::PubRec, 11).await;
        // Sent again before PUBREL: acknowledged, not published twice.
        publisher.publish("qos/2", b"two", QoS::ExactlyOnce, false, 11).await;
        publisher.expect_ack(AckKind::PubRec, 11).await;
        publisher.ack(AckKind::PubRel, 11).await;
        publisher.expect_ack(AckKind::PubComp, 11).await;
        let p = sub.recv_publish().await;
        assert_eq!((p.qos, &p.payload[..]), (QoS::ExactlyOnce, &b"two"[..]));
        let id = p.packet_id.expect("an id");
        sub.ack(AckKind::PubRec, id).await;
        sub.expect_ack(AckKind::PubRel, id).await;
        sub.ack(AckKind::PubComp, id).await;
        sub.quiet().await;
        sub.disconnect().await;
        publisher.disconnect().await;
        assert_eq!(sub.closed().await, None);
    }
}

#[tokio::test]
async fn mqtt_and_web_clients_share_channels_both_ways() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(&["bridge/json", "bridge/bytes"]).await;
    let mut mqtt = Client::connect(server.mqtt_addr, Version::V5, "bridge").await;
    mqtt.subscribe("bridge/web", QoS::AtLeastOnce).await;

    mqtt.publish("bridge/json", br#"{"t": 21.5}"#, QoS::AtLeastOnce, false, 1).await;
    mqtt.expect_ack(AckKind::PubAck, 1).await;
    let m = ws.recv_type("message").await;
    assert_eq!((m["channel"].clone(), m["data"].clone()), (json!("bridge/json"), json!({"t": 21.5})), "{m}");

    mqtt.publish("bridge/bytes", b"\x00\xffraw", QoS::AtMostOnce, false, 0).await;
    let m = ws.recv_type("message").await;
    assert_eq!((m["data"].clone(), m["encoding"].clone()), (json!("AP9yYXc="), json!("base64")), "{m}");

    server.publish("bridge/web", json!({"from": "http"})).await;
    let p = mqtt.recv_publish().await;
    assert_eq!(&p.payload[..], br#"{"from":"http"}"#);
    mqtt.ack(AckKind::PubAck, p.packet_id.expect("id")).await;

    // Shared history: a web client reads what arrived over MQTT.
    let history: serde_json::Value = reqwest::get(server.url("/api/channels/bridge/json/history?limit=10"))
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history["publications"][0]["data"], json!({"t": 21.5}), "{history}");
}

#[tokio::test]
async fn retained_messages_are_sent_to_new_subscribers_until_cleared() {
    let server = TestServer::start().await;
    let mut publisher = Client::connect(server.mqtt_addr, Version::V311, "p").await;
    publisher.publish("dev/1/state", b"on", QoS::AtLeastOnce, true, 1).await;
    publisher.expect_ack(AckKind::PubAck, 1).await;

    let mut sub = Client::connect(server.mqtt_addr, Version::V5, "s").await;
    sub.subscribe("dev/+/state", QoS::AtLeastOnce).await;
    let p = sub.recv_publish().await;
    assert!(p.retain, "sent from the store: retained");
    assert_eq!(&p.payload[..], b"on");
    sub.ack(AckKind::PubAck, p.packet_id.expect("id")).await;

    // Retain handling 2: never sent.
    let never = SubscriptionOptions {
        qos: Some(QoS::AtMostOnce),
        retain_handling: RetainHandling::Never,
        ..Default::default()
    };
    let mut other = Client::connect(server.mqtt_addr, Version::V5, "o").await;
    other.subscribe_with("dev/#", never, None).await;
    other.quiet().await;

    publisher.publish("dev/1/state", b"", QoS::AtLeastOnce, true, 2).await;
    publisher.expect_ack(AckKind::PubAck, 2).await;
    // The empty message still reaches current subscribers.
    assert!(sub.recv_publish().await.payload.is_empty());
    let mut late = Client::connect(server.mqtt_addr, Version::V311, "late").await;
    late.subscribe("dev/#", QoS::AtLeastOnce).await;
    late.quiet().await;
}

#[tokio::test]
async fn a_will_is_published_on_an_unclean_end_only() {
    let server = TestServer::start().await;
    let mut watcher = Client::connect(server.mqtt_addr, Version::V5, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    for (id, clean) in [("clean", true), ("crash", false)] {
        let mut connect = connect_packet(Version::V311, id, true);
        connect.will = Some(Will {
            topic: format!("wills/{id}"),
            payload: bytes::Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        });
        let (mut client, ack) = Client::connect_with(server.mqtt_addr, connect).await;
        assert_eq!(ack.reason, Reason::Success);
        if clean {
            client.disconnect().await;
            client.closed().await;
        }
        drop(client);
    }
    let p = watcher.recv_publish().await;
    assert_eq!(p.topic, "wills/crash");
    watcher.ack(AckKind::PubAck, p.packet_id.expect("id")).await;
    watcher.quiet().await;
}

#[tokio::test]
async fn a_persistent_session_keeps_subscriptions_and_queues_qos_1_and_2() {
    let server = TestServer::start().await;
    for version in [Version::V311, Version::V5] {
        let mut connect = connect_packet(version, "device-7", false);
        if version == Version::V5 {
            connect.clean_start = false;
            connect.properties.session_expiry = Some(300);
        }
        let (mut device, ack) = Client::connect_with(server.mqtt_addr, connect.clone()).await;
        assert!(!ack.session_present);
        device.subscribe("cmd/7/#", QoS::ExactlyOnce).await;
        let mut publisher = Client::connect(server.mqtt_addr, Version::V311, "cmd").await;
        publisher.publish("cmd/7/a", b"before", QoS::AtLeastOnce, false, 1).await;
        publisher.expect_ack(AckKind::PubAck, 1).await;
        // Received and not acknowledged: sent again on reconnect, with DUP set.
        let unacked = device.recv_publish().await;
        assert!(!unacked.dup);
        drop(device);

        eventually("the old connection to end", || async {
            let metrics = server.presence().await;
            Some(()).filter(|_| !metrics.to_string().is_empty())
        })
        .await;
        publisher.publish("cmd/7/b", b"qos0", QoS::AtMostOnce, false, 0).await;
        publisher.publish("cmd/7/c", b"qos1", QoS::AtLeastOnce, false, 2).await;
        publisher.expect_ack(AckKind::PubAck, 2).await;
        server.publish("cmd/7/d", json!("web")).await;

        let (mut device, ack) = Client::connect_with(server.mqtt_addr, connect.clone()).await;
        assert!(ack.session_present, "{version:?}");
        let again = device.recv_publish().await;
        assert!(again.dup, "{again:?}");
        assert_eq!((&again.payload[..], again.packet_id), (&b"before"[..], unacked.packet_id));
        device.ack(AckKind::PubAck, again.packet_id.expect("id")).await;
        let queued = device.recv_publish().await;
        assert_eq!(&queued.payload[..], b"qos1", "QoS 0 is not kept for an offline client");
        device.ack(AckKind::PubAck, queued.packet_id.expect("id")).await;
        let web = device.recv_publish().await;
        assert_eq!(&web.payload[..], b"\"web\"");
        assert_eq!(web.qos, QoS::ExactlyOnce, "a web publication goes at the subscription's QoS");
        let id = web.packet_id.expect("id");
        device.ack(AckKind::PubRec, id).await;
        device.expect_ack(AckKind::PubRel, id).await;
        device.ack(AckKind::PubComp, id).await;
        // A clean start ends the session.
        device.disconnect().await;
        device.closed().await;
        let mut clean = connect.clone();
        clean.clean_start = true;
        let (mut device, ack) = Client::connect_with(server.mqtt_addr, clean).await;
        assert!(!ack.session_present);
        device.disconnect().await;
        device.closed().await;
    }
}

#[tokio::test]
async fn v5_features_reach_the_subscriber() {
    let server = TestServer::start().await;
    let mut connect = connect_packet(Version::V5, "", true);
    connect.properties.receive_maximum = Some(1);
    let (mut client, ack) = Client::connect_with(server.mqtt_addr, connect).await;
    let assigned = ack.properties.assigned_client_id.expect("an assigned client identifier");
    assert!(!assigned.is_empty());
    assert_eq!(ack.properties.topic_alias_maximum, Some(16));

    // No local: its own publications do not come back; retain as published keeps the flag.
    let options = SubscriptionOptions {
        qos: Some(QoS::AtLeastOnce),
        no_local: true,
        retain_as_published: true,
        ..Default::default()
    };
    client.subscribe_with("v5/#", options, Some(7)).await;
    let mut other = Client::connect(server.mqtt_addr, Version::V5, "other").await;
    client.publish("v5/own", b"mine", QoS::AtMostOnce, false, 0).await;
    let properties = Properties {
        user: vec![("unit".into(), "celsius".into())],
        content_type: Some("text/plain".into()),
        topic_alias: Some(3),
        message_expiry: Some(120),
        ..Properties::default()
    };
    other.publish_with("v5/temp", b"21", QoS::AtLeastOnce, true, 1, properties).await;
    other.expect_ack(AckKind::PubAck, 1).await;
    // The alias stands for the topic from now on.
    let alias = Properties { topic_alias: Some(3), ..Properties::default() };
    other.publish_with("", b"22", QoS::AtLeastOnce, false, 2, alias).await;
    other.expect_ack(AckKind::PubAck, 2).await;

    let first = client.recv_publish().await;
    assert_eq!((first.topic.as_str(), &first.payload[..], first.retain), ("v5/temp", &b"21"[..], true));
    assert_eq!(first.properties.user, vec![("unit".to_owned(), "celsius".to_owned())]);
    assert_eq!(first.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(first.properties.subscription_ids, vec![7]);
    assert!(first.properties.message_expiry.is_some_and(|s| s <= 120));
    // Receive maximum 1: the next waits for this one's PUBACK.
    client.quiet().await;
    client.ack(AckKind::PubAck, first.packet_id.expect("id")).await;
    let second = client.recv_publish().await;
    assert_eq!((second.topic.as_str(), &second.payload[..], second.retain), ("v5/temp", &b"22"[..], false));
}

#[tokio::test]
async fn shared_subscriptions_split_the_messages_between_members() {
    let server = TestServer::start().await;
    let mut a = Client::connect(server.mqtt_addr, Version::V5, "a").await;
    let mut b = Client::connect(server.mqtt_addr, Version::V311, "b").await;
    assert_eq!(a.subscribe("$share/workers/jobs/+", QoS::AtMostOnce).await, vec![Reason::Success]);
    assert_eq!(b.subscribe("$share/workers/jobs/+", QoS::AtMostOnce).await, vec![Reason::Success]);
    let mut publisher = Client::connect(server.mqtt_addr, Version::V5, "p").await;
    for i in 0..4u8 {
        publisher.publish("jobs/x", &[b'0' + i], QoS::AtMostOnce, false, 0).await;
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(a.recv_publish().await.payload[0]);
        got.push(b.recv_publish().await.payload[0]);
    }
    got.sort_unstable();
    assert_eq!(got, b"0123");
    a.quiet().await;
    b.quiet().await;
    a.send(Packet::Unsubscribe(Unsubscribe {
        packet_id: 2,
        properties: Properties::default(),
        filters: vec!["$share/workers/jobs/+".into()],
    }))
    .await;
    assert!(matches!(a.recv().await, Packet::UnsubAck(u) if u.reasons == vec![Reason::Success]));
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards_and_sys_is_served() {
    let server = TestServer::start().await;
    let mut client = Client::connect(server.mqtt_addr, Version::V311, "sys").await;
    client.subscribe("#", QoS::AtMostOnce).await;
    let granted = client.subscribe("$SYS/broker/clients/connected", QoS::AtMostOnce).await;
    assert_eq!(granted, vec![Reason::Success]);
    // Published once a second at start, then every `sys_interval_secs`: it may arrive live.
    let p = client.recv_publish().await;
    assert_eq!(p.topic, "$SYS/broker/clients/connected");
    // Once published, it is retained for every later subscriber.
    let mut late = Client::connect(server.mqtt_addr, Version::V5, "late").await;
    late.subscribe("$SYS/broker/#", QoS::AtMostOnce).await;
    let mut seen = std::collections::HashMap::new();
    while seen.len() < 8 {
        let p = late.recv_publish().await;
        assert!(p.retain, "{p:?}");
        seen.insert(p.topic.clone(), String::from_utf8(p.payload.to_vec()).expect("text"));
    }
    let connected: u64 = seen["$SYS/broker/clients/connected"].parse().expect("a number");
    assert!(connected <= 2, "{connected}");
    assert!(seen["$SYS/broker/uptime"].ends_with(" seconds"), "{seen:?}");
    // Publishing to a $ topic is refused; v3.1.1 can only drop it.
    client.publish("$SYS/broker/uptime", b"x", QoS::AtMostOnce, false, 0).await;
    client.publish("plain", b"x", QoS::AtMostOnce, false, 0).await;
    let p = client.recv_publish().await;
    assert_eq!(p.topic, "plain", "# does not match $ topics");
}

#[tokio::test]
async fn bad_packets_close_only_that_connection_with_the_reason() {
    let server = TestServer::start().await;
    let mut bystander = Client::connect(server.mqtt_addr, Version::V5, "bystander").await;
    bystander.subscribe("ok", QoS::AtMostOnce).await;

    // Protocol level 3 (MQTT 3.1): CONNACK "unacceptable protocol version".
    let mut old = Client::open(server.mqtt_addr, Version::V311).await;
    old.send_raw(&[0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 1, b'c']).await;
    assert!(matches!(old.recv().await, Packet::ConnAck(a) if a.reason == Reason::UnsupportedProtocolVersion));

    let mut v5 = Client::connect(server.mqtt_addr, Version::V5, "bad").await;
    v5.send_raw(&[0x36, 5, 0, 1, b'a', 0, 1]).await;
    assert_eq!(v5.closed().await, Some(Reason::MalformedPacket));

    let mut v5 = Client::connect(server.mqtt_addr, Version::V5, "wild").await;
    v5.publish("a/+", b"x", QoS::AtMostOnce, false, 0).await;
    assert_eq!(v5.closed().await, Some(Reason::TopicNameInvalid));

    let mut v3 = Client::connect(server.mqtt_addr, Version::V311, "again").await;
    v3.send(Packet::Connect(Box::new(connect_packet(Version::V311, "again", true)))).await;
    assert_eq!(v3.closed().await, None);

    // A packet over the limit is refused from its fixed header.
    let mut big = Client::connect(server.mqtt_addr, Version::V5, "big").await;
    big.send_raw(&[0x30, 0xff, 0xff, 0x7f]).await;
    assert_eq!(big.closed().await, Some(Reason::PacketTooLarge));

    let mut publisher = Client::connect(server.mqtt_addr, Version::V311, "still").await;
    publisher.publish("ok", b"fine", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&bystander.recv_publish().await.payload[..], b"fine");
}

#[tokio::test]
async fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let server = TestServer::start().await;
    let mut connect = connect_packet(Version::V5, "sleepy", true);
    connect.keep_alive = 1;
    let (mut client, _) = Client::connect_with(server.mqtt_addr, connect).await;
    let started = std::time::Instant::now();
    assert_eq!(client.closed().await, Some(Reason::KeepAliveTimeout));
    assert!(started.elapsed() >= std::time::Duration::from_millis(1400), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_taken_over_client_identifier_hands_its_session_over() {
    let server = TestServer::start().await;
    let mut connect = connect_packet(Version::V5, "twin", false);
    connect.properties.session_expiry = Some(60);
    let (mut first, _) = Client::connect_with(server.mqtt_addr, connect.clone()).await;
    first.subscribe("twin/#", QoS::AtLeastOnce).await;
    let (mut second, ack) = Client::connect_with(server.mqtt_addr, connect).await;
    assert!(ack.session_present);
    assert_eq!(first.closed().await, Some(Reason::SessionTakenOver));
    server.publish("twin/x", json!(1)).await;
    assert_eq!(&second.recv_publish().await.payload[..], b"1");
}

#[tokio::test]
async fn refused_credentials_and_topics_get_their_codes() {
    let key = livehub_auth::generate_api_key();
    let server = TestServer::with(Config { auth: reader_auth(&key), ..Config::default() }).await;
    for (version, want) in
        [(Version::V311, Reason::BadUserNameOrPassword), (Version::V5, Reason::BadUserNameOrPassword)]
    {
        let mut connect = connect_packet(version, "x", true);
        connect.username = Some("token".into());
        connect.password = Some(bytes::Bytes::from_static(b"not-a-token"));
        let (_, ack) = Client::connect_with(server.mqtt_addr, connect).await;
        assert_eq!(ack.reason, want);
    }
    for version in [Version::V311, Version::V5] {
        let mut connect = connect_packet(version, "reader", true);
        connect.username = Some("key".into());
        connect.password = Some(bytes::Bytes::from(key.clone()));
        let (mut client, ack) = Client::connect_with(server.mqtt_addr, connect).await;
        assert_eq!(ack.reason, Reason::Success);
        assert_eq!(client.subscribe("public/x", QoS::AtMostOnce).await, vec![Reason::Success]);
        let refused = client.subscribe("private/x", QoS::AtMostOnce).await;
        // 3.1.1 has one failure code, 0x80; v5 says why.
        let want = if version == Version::V5 { Reason::NotAuthorized } else { Reason::Unspecified };
        assert_eq!(refused, vec![want]);
        client.publish("public/x", b"1", QoS::AtLeastOnce, false, 5).await;
        let reason = client.expect_ack(AckKind::PubAck, 5).await;
        let want = if version == Version::V5 { Reason::NotAuthorized } else { Reason::Success };
        assert_eq!(reason, want);
    }
}

/// Auth required, and one API key that may subscribe to `public/#` and publish nowhere.
fn reader_auth(key: &str) -> livehub_server::AuthConfig {
    let text = format!(
        "[auth]\nrequired = true\n[[auth.api_keys]]\nname = \"reader\"\nsha256 = \"{}\"\nsubscribe = [\"public/#\"]\n",
        livehub_auth::hash_api_key(key)
    );
    Config::from_toml(&text).expect("auth config").auth
}

#[tokio::test]
async fn mqtt_over_websocket_at_slash_mqtt() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start().await;
    let mut request = format!("ws://{}/mqtt", server.addr).into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    let (mut tx, mut rx) = ws.split();
    assert_eq!(response.headers()["sec-websocket-protocol"], "mqtt");
    let frame = |packet: Packet| {
        let mut out = Vec::new();
        encode(&packet, Version::V5, &mut out);
        Message::binary(out)
    };
    let mut recv = async || -> Packet {
        let mut buf = BytesMut::new();
        loop {
            if let Some(d) = decode(&buf, Some(Version::V5), usize::MAX).expect("valid") {
                return d.packet;
            }
            match tokio::time::timeout(WAIT, rx.next()).await.expect("in time").expect("open").expect("ok") {
                Message::Binary(b) => buf.extend_from_slice(&b),
                other => panic!("{other:?}"),
            }
        }
    };
    tx.send(frame(Packet::Connect(Box::new(connect_packet(Version::V5, "ws", true))))).await.expect("send");
    assert!(matches!(recv().await, Packet::ConnAck(a) if a.reason == Reason::Success));
    let options = SubscriptionOptions { qos: Some(QoS::AtMostOnce), ..Default::default() };
    let subscribe = Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("ws/t".into(), options)],
    };
    tx.send(frame(Packet::Subscribe(subscribe))).await.expect("send");
    assert!(matches!(recv().await, Packet::SubAck(_)));
    server.publish("ws/t", json!([1, 2])).await;
    match recv().await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"[1,2]"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_plain_get_says_whether_mqtt_over_websocket_is_off() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    // A browser cannot read why a WebSocket handshake failed; the dashboard asks with a GET.
    let on = TestServer::start().await;
    let answer = reqwest::get(on.url("/mqtt")).await.expect("GET /mqtt");
    assert_eq!(answer.status(), 400, "on: a GET that is no upgrade is a bad request");

    let mut config = Config::default();
    config.mqtt.websocket = false;
    let off = TestServer::with(config).await;
    let answer = reqwest::get(off.url("/mqtt")).await.expect("GET /mqtt");
    assert_eq!(answer.status(), 404);
    let body: serde_json::Value = answer.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "transport_disabled", "{body}");

    let mut request = format!("ws://{}/mqtt", off.addr).into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_err(), "off: no upgrade");
}

#[tokio::test]
async fn mqtt_over_tls_when_the_server_has_tls() {
    use std::sync::Arc;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

    let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs");
    let text = format!(
        "[tls]\ncert_file = '{}'\nkey_file = '{}'\n",
        certs.join("a.pem").display(),
        certs.join("a.key").display()
    );
    let server = TestServer::with(Config::from_toml(&text).expect("tls config")).await;
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(certs.join("ca.pem")).expect("ca")).expect("ca");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.mqtt_addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("handshake");
    let client = Client { tcp: Box::new(tls), buf: BytesMut::new(), version: Version::V311 };
    let (mut client, ack) = client.handshake(connect_packet(Version::V311, "tls", true)).await;
    assert_eq!(ack.reason, Reason::Success);
    client.subscribe("tls/x", QoS::AtMostOnce).await;
    client.publish("tls/x", b"secret", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&client.recv_publish().await.payload[..], b"secret");
}

#[tokio::test]
async fn the_accept_path_limits_apply_to_mqtt() {
    let mut config = Config::default();
    config.limits.request_head_timeout_secs = 1;
    config.rate_limits.connections_per_ip = 2;
    let server = TestServer::with(config).await;
    // No CONNECT within the head timeout: closed.
    let mut silent = Client::open(server.mqtt_addr, Version::V5).await;
    assert!(silent.next().await.is_none(), "closed without a packet");
    // Past the address's connection limit: CONNACK 0x97 (3.1.1: 3, server unavailable).
    let _a = Client::connect(server.mqtt_addr, Version::V5, "a").await;
    let _b = Client::connect(server.mqtt_addr, Version::V5, "b").await;
    let (_, ack) = Client::connect_with(server.mqtt_addr, connect_packet(Version::V5, "c", true)).await;
    assert_eq!(ack.reason, Reason::QuotaExceeded);
    let (_, ack) = Client::connect_with(server.mqtt_addr, connect_packet(Version::V311, "d", true)).await;
    assert_eq!(ack.reason, Reason::ServerUnavailable);
}

#[tokio::test]
async fn a_taken_port_is_an_error_naming_the_setting() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = Config::default();
    config.mqtt.listen = Some(taken.local_addr().expect("addr"));
    let error = livehub_server::bind_mqtt(&config).expect_err("the port is taken");
    let text = error.to_string();
    assert!(text.contains("[mqtt] listen") && text.contains("LIVEHUB_MQTT_LISTEN"), "{text}");
    config.mqtt.listen = livehub_server::parse_mqtt_listen("off").expect("off");
    assert!(livehub_server::bind_mqtt(&config).expect("no listener").is_none());
}

#[tokio::test]
async fn qos_2_reaches_a_subscriber_exactly_once_across_a_reconnect() {
    let server = TestServer::start().await;
    let mut connect = connect_packet(Version::V5, "exactly-once", false);
    connect.properties.session_expiry = Some(60);
    let (mut device, _) = Client::connect_with(server.mqtt_addr, connect.clone()).await;
    device.subscribe("once/#", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(server.mqtt_addr, Version::V5, "once-pub").await;
    for (i, payload) in [(1u16, &b"a"[..]), (2, b"b")] {
        publisher.publish("once/x", payload, QoS::ExactlyOnce, false, i).await;
        publisher.expect_ack(AckKind::PubRec, i).await;
        publisher.ack(AckKind::PubRel, i).await;
        publisher.expect_ack(AckKind::PubComp, i).await;
    }
    // "a": received and PUBREC sent, then the connection drops before PUBCOMP; "b": received,
    // and the connection drops before its PUBREC.
    let a = device.recv_publish().await;
    let b = device.recv_publish().await;
    assert_eq!((&a.payload[..], &b.payload[..]), (&b"a"[..], &b"b"[..]));
    let a_id = a.packet_id.expect("id");
    device.ack(AckKind::PubRec, a_id).await;
    device.expect_ack(AckKind::PubRel, a_id).await;
    drop(device);

    // Whether or not the server has seen the old connection end, the session comes back.
    let (mut device, ack) = Client::connect_with(server.mqtt_addr, connect).await;
    assert!(ack.session_present);
    // "a" is only released again, never sent again; "b" is sent again with DUP.
    device.expect_ack(AckKind::PubRel, a_id).await;
    let again = device.recv_publish().await;
    assert!(again.dup && &again.payload[..] == b"b", "{again:?}");
    let b_id = again.packet_id.expect("id");
    device.ack(AckKind::PubComp, a_id).await;
    device.ack(AckKind::PubRec, b_id).await;
    device.expect_ack(AckKind::PubRel, b_id).await;
    device.ack(AckKind::PubComp, b_id).await;
    device.quiet().await;
}

#[tokio::test]
async fn the_server_keep_alive_is_told_to_v5_clients_and_enforced() {
    let mut config = Config::default();
    config.mqtt.max_keep_alive_secs = 1;
    let server = TestServer::with(config).await;
    let mut connect = connect_packet(Version::V5, "no-keep-alive", true);
    connect.keep_alive = 0;
    let (mut client, ack) = Client::connect_with(server.mqtt_addr, connect).await;
    assert_eq!(ack.properties.server_keep_alive, Some(1));
    assert_eq!(client.closed().await, Some(Reason::KeepAliveTimeout));
    let (_, ack) = Client::connect_with(server.mqtt_addr, connect_packet(Version::V311, "long", true)).await;
    assert_eq!(ack.reason, Reason::ClientIdNotValid, "3.1.1 cannot be told: refused");
}
