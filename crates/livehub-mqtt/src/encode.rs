//! The encoder: [`Packet`]s to bytes, in the form of the connection's version (3.1.1 drops
//! properties and maps reason codes to its own).

use crate::packet::*;
use crate::properties::Properties;
use crate::{connack_v3, Reason};

/// Appends `packet`, as `version` writes it, to `out`.
pub fn encode(packet: &Packet, version: Version, out: &mut Vec<u8>) {
    let v5 = version == Version::V5;
    let mut body = Writer::default();
    let b = &mut body;
    let props = |b: &mut Writer, p: &Properties| {
        if v5 {
            p.encode(b);
        }
    };
    let first = match packet {
        Packet::Connect(c) => {
            b.string("MQTT");
            b.u8(if c.version == Version::V5 { 5 } else { 4 });
            let v5 = c.version == Version::V5;
            let mut flags = 0u8;
            if c.username.is_some() {
                flags |= 0x80;
            }
            if c.password.is_some() {
                flags |= 0x40;
            }
            if let Some(will) = &c.will {
                flags |= 0x04 | ((will.qos as u8) << 3);
                if will.retain {
                    flags |= 0x20;
                }
            }
            if c.clean_start {
                flags |= 0x02;
            }
            b.u8(flags);
            b.u16(c.keep_alive);
            if v5 {
                c.properties.encode(b);
            }
            b.string(&c.client_id);
            if let Some(will) = &c.will {
                if v5 {
                    will.properties.encode(b);
                }
                b.string(&will.topic);
                b.binary(&will.payload);
            }
            if let Some(username) = &c.username {
                b.string(username);
            }
            if let Some(password) = &c.password {
                b.binary(password);
            }
            0x10
        }
        Packet::ConnAck(c) => {
            b.u8(u8::from(c.session_present));
            b.u8(if v5 { c.reason.code() } else { connack_v3(c.reason) });
            props(b, &c.properties);
            0x20
        }
        Packet::Publish(p) => {
            b.string(&p.topic);
            if let Some(id) = p.packet_id {
                b.u16(id);
            }
            props(b, &p.properties);
            b.bytes(&p.payload);
            0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain)
        }
        Packet::Ack(a) => {
            b.u16(a.packet_id);
            if v5 && (a.reason != Reason::Success || !a.properties.is_empty()) {
                b.u8(a.reason.code());
                if !a.properties.is_empty() {
                    a.properties.encode(b);
                }
            }
            match a.kind {
                AckKind::PubAck => 0x40,
                AckKind::PubRec => 0x50,
                AckKind::PubRel => 0x62,
                AckKind::PubComp => 0x70,
            }
        }
        Packet::Subscribe(s) => {
            b.u16(s.packet_id);
            props(b, &s.properties);
            for (filter, o) in &s.filters {
                b.string(filter);
                let mut bits = o.max_qos() as u8;
                if v5 {
                    bits |= u8::from(o.no_local) << 2 | u8::from(o.retain_as_published) << 3;
                    bits |= (match o.retain_handling {
                        RetainHandling::OnSubscribe => 0,
                        RetainHandling::OnNewSubscribe => 1,
                        RetainHandling::Never => 2,
                    }) << 4;
                }
                b.u8(bits);
            }
            0x82
        }
        Packet::SubAck(s) => {
            b.u16(s.packet_id);
            props(b, &s.properties);
            for reason in &s.reasons {
                b.u8(if v5 || !reason.is_error() { reason.code() } else { 0x80 });
            }
            0x90
        }
        Packet::Unsubscribe(u) => {
            b.u16(u.packet_id);
            props(b, &u.properties);
            for filter in &u.filters {
                b.string(filter);
            }
            0xA2
        }
        Packet::UnsubAck(u) => {
            b.u16(u.packet_id);
            if v5 {
                u.properties.encode(b);
                for reason in &u.reasons {
                    b.u8(reason.code());
                }
            }
            0xB0
        }
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(d) | Packet::Auth(d) => {
            if v5 && (d.reason != Reason::Success || !d.properties.is_empty()) {
                b.u8(d.reason.code());
                if !d.properties.is_empty() {
                    d.properties.encode(b);
                }
            }
            if matches!(packet, Packet::Auth(_)) {
                0xF0
            } else {
                0xE0
            }
        }
    };
    out.push(first);
    let mut len = Writer::default();
    len.varint(body.len() as u32);
    out.extend_from_slice(len.as_slice());
    out.extend_from_slice(body.as_slice());
}

/// A growing body.
#[derive(Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn varint(&mut self, mut v: u32) {
        loop {
            let byte = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }

    /// A string with its two-byte length; the caller keeps it within 65,535 bytes.
    pub(crate) fn string(&mut self, v: &str) {
        self.binary(v.as_bytes());
    }

    /// Binary data with its two-byte length; longer data is cut at 65,535 bytes, which no field
    /// the server writes reaches.
    pub(crate) fn binary(&mut self, v: &[u8]) {
        let v = &v[..v.len().min(usize::from(u16::MAX))];
        self.u16(v.len() as u16);
        self.0.extend_from_slice(v);
    }
}
