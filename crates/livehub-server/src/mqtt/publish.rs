//! The bridge between MQTT messages and channel publications, both ways.
//!
//! In: an MQTT payload that is valid JSON is published as JSON data (web clients see the value),
//! anything else as binary data. Out: a publication's JSON text or bytes are the MQTT payload,
//! with what MQTT said about it (see `meta.rs`) when it came from MQTT.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Instant;

use bytes::Bytes;
use livehub_auth::{AuthError, Identity};
use livehub_core::{ClientId, Encoding, Payload, Publication};
use livehub_mqtt::{encode, Packet, Properties, Publish, QoS, Version, Will};

use super::meta::Meta;
use super::retained::Retained;
use super::session::Subscription;
use super::Mqtt;
use crate::engine::{self, ClientError};
use crate::App;

/// An MQTT application message on its way to a channel.
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) properties: Properties,
}

/// The properties a publication passes on to subscribers (MQTT 5.0 section 3.3.2.3): the rest
/// (topic alias, subscription identifiers) belong to one hop.
fn forwarded(p: &Properties) -> Properties {
    Properties {
        payload_format: p.payload_format,
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user: p.user.clone(),
        ..Properties::default()
    }
}

impl Message {
    pub(crate) fn from_publish(p: &Publish) -> Self {
        Self {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            qos: p.qos,
            retain: p.retain,
            properties: p.properties.clone(),
        }
    }

    pub(crate) fn from_will(w: &Will) -> Self {
        Self {
            topic: w.topic.clone(),
            payload: w.payload.clone(),
            qos: w.qos,
            retain: w.retain,
            properties: w.properties.clone(),
        }
    }
}

/// The channel data of an MQTT payload: JSON when it is valid JSON, bytes otherwise.
pub(crate) fn payload(bytes: &Bytes) -> Payload {
    if bytes.is_empty() {
        return Payload::Binary(bytes.clone());
    }
    Payload::json(bytes.clone()).unwrap_or_else(|_| Payload::Binary(bytes.clone()))
}

fn bytes_of(payload: &Payload) -> &Bytes {
    match payload {
        Payload::Json(b) | Payload::Binary(b) => b,
    }
}

/// Publishes `message` to its channel for `identity` (checks, limits and history as on every
/// transport), keeps it as the retained message when asked, and answers with the reason code
/// for the client's acknowledgement.
pub(crate) async fn publish(
    app: &App,
    mqtt: &Mqtt,
    identity: &Identity,
    peer: IpAddr,
    origin: ClientId,
    message: Message,
) -> livehub_mqtt::Reason {
    use livehub_mqtt::Reason;
    let data = payload(&message.payload);
    let expires_at = message
        .properties
        .message_expiry
        .and_then(|secs| Instant::now().checked_add(std::time::Duration::from_secs(u64::from(secs))));
    let properties = forwarded(&message.properties);
    mqtt.meta.insert(
        &data,
        Meta { qos: message.qos, retain: message.retain, expires_at, properties: properties.clone(), origin },
    );
    match engine::publish(app, identity, peer, &message.topic, data.clone(), None).await {
        Ok((channel, _)) => {
            mqtt.received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if message.retain {
                let payload = bytes_of(&data).clone();
                mqtt.retained.set(Retained {
                    topic: channel,
                    payload,
                    qos: message.qos,
                    expires_at,
                    properties,
                });
            }
            Reason::Success
        }
        Err(e) => {
            mqtt.meta.remove(&data);
            tracing::debug!(topic = %message.topic, error = %e, "MQTT publish refused");
            match e {
                ClientError::Auth(AuthError::RateLimited) => Reason::QuotaExceeded,
                ClientError::Auth(_) => Reason::NotAuthorized,
                ClientError::Core(livehub_core::Error::ReadOnlyChannel(_)) => Reason::NotAuthorized,
                ClientError::Core(livehub_core::Error::InvalidChannel(_)) => Reason::TopicNameInvalid,
                ClientError::Core(livehub_core::Error::TooLarge { .. }) => Reason::QuotaExceeded,
                ClientError::Core(livehub_core::Error::InvalidData(_)) => Reason::PayloadFormatInvalid,
                _ => Reason::Unspecified,
            }
        }
    }
}

/// How a publication goes out to one client.
pub(crate) enum Outbound<'a> {
    /// A QoS 0 `PUBLISH` without properties: the publication's own frame for the client's
    /// version and this retain flag, encoded by the first subscriber that needed it and shared
    /// by every other.
    Frame(&'a Bytes),
    /// A `PUBLISH` of this client's own: QoS 1 or 2 (it gets a packet identifier), or properties
    /// that only it gets (subscription identifiers, the time left to live).
    Publish(Box<Publish>),
}

/// The encodings of QoS 0 `PUBLISH` frames without properties, by version and retain flag.
static FRAMES: LazyLock<[Encoding; 4]> = LazyLock::new(|| {
    [
        Encoding::register("mqtt-3.1.1"),
        Encoding::register("mqtt-3.1.1-retain"),
        Encoding::register("mqtt-5"),
        Encoding::register("mqtt-5-retain"),
    ]
});

/// The QoS 0 frame of `publication` for `version`, with the retain flag `retain`.
fn frame(publication: &Publication, version: Version, retain: bool) -> &Bytes {
    let encoding = FRAMES[usize::from(version == Version::V5) * 2 + usize::from(retain)];
    publication.frame_ref(encoding, |publication| {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain,
            topic: publication.channel.as_str().to_owned(),
            packet_id: None,
            properties: Properties::default(),
            payload: bytes_of(&publication.data).clone(),
        };
        let mut out = Vec::new();
        encode(&Packet::Publish(publish), version, &mut out);
        Bytes::from(out)
    })
}

/// How `publication` goes out to a client whose matching subscriptions (shared or not, as
/// `subscriptions` holds them) are given; `None` when none wants it.
///
/// Its QoS is the lower of the one it was published with and the highest one granted (a
/// publication from another transport counts as QoS 2: the subscription decides), no local
/// skips the client's own publications, and the retain flag is kept only for subscriptions that
/// retain as published.
pub(crate) fn route<'a, 'b>(
    publication: &'a Publication,
    meta: Option<&Meta>,
    origin: ClientId,
    subscriptions: impl Iterator<Item = &'b Subscription>,
    version: Version,
) -> Option<Outbound<'a>> {
    let own = meta.is_some_and(|m| m.origin == origin);
    let mut granted: Option<QoS> = None;
    let mut retain = false;
    let mut ids = Vec::new();
    for subscription in subscriptions {
        if !subscription.filter.matches(&publication.channel) || (own && subscription.options.no_local) {
            continue;
        }
        granted = granted.max(Some(subscription.options.max_qos()));
        retain |= subscription.options.retain_as_published && meta.is_some_and(|m| m.retain);
        if let Some(id) = subscription.id {
            ids.push(id);
        }
    }
    let mut qos = granted?;
    let mut expiry = None;
    if let Some(meta) = meta {
        qos = qos.min(meta.qos);
        if let Some(at) = meta.expires_at {
            let left = at.checked_duration_since(Instant::now())?;
            expiry = Some(left.as_secs().max(1) as u32);
        }
    }
    let v5 = version == Version::V5;
    // 3.1.1 carries no properties, so there every QoS 0 delivery is the shared frame.
    let own_properties =
        v5 && (expiry.is_some() || !ids.is_empty() || meta.is_some_and(|m| !m.properties.is_empty()));
    if qos == QoS::AtMostOnce && !own_properties {
        return Some(Outbound::Frame(frame(publication, version, retain)));
    }
    let mut properties = Properties::default();
    if v5 {
        if let Some(meta) = meta {
            properties = meta.properties.clone();
        }
        properties.message_expiry = expiry;
        ids.sort_unstable();
        ids.dedup();
        properties.subscription_ids = ids;
    }
    Some(Outbound::Publish(Box::new(Publish {
        dup: false,
        qos,
        retain,
        topic: publication.channel.as_str().to_owned(),
        packet_id: None,
        properties,
        payload: bytes_of(&publication.data).clone(),
    })))
}

/// The `PUBLISH` of a retained message for a new subscription granted `granted`.
pub(crate) fn retained_publish(retained: &Retained, granted: QoS) -> Publish {
    let mut properties = retained.properties.clone();
    if let Some(at) = retained.expires_at {
        let left = at.saturating_duration_since(Instant::now());
        properties.message_expiry = Some(left.as_secs().max(1) as u32);
    }
    Publish {
        dup: false,
        qos: retained.qos.min(granted),
        retain: true,
        topic: retained.topic.as_str().to_owned(),
        packet_id: None,
        properties,
        payload: retained.payload.clone(),
    }
}
