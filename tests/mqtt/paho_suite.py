"""MQTT scenarios with Eclipse Paho (paho-mqtt 2.x), run against livehub and against Mosquitto.

Every scenario runs on both brokers unless it is marked livehub-only (the bridge to the web
transports, which Mosquitto does not have). A failed check names the scenario and the broker,
so a difference in behaviour shows; docs/mqtt.md explains the ones that are meant.

    python paho_suite.py --name livehub --port 1883 [--ws-port 8080 --ws-path /mqtt]
                         [--http http://127.0.0.1:8080] [--auth-port P --auth-key KEY]
"""

import argparse
import base64
import json
import queue
import socket
import struct
import sys
import threading
import time
import urllib.request
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WAIT = 10
V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5


class Broker:
    def __init__(self, args):
        self.name = args.name
        self.host = "127.0.0.1"
        self.port = args.port
        self.ws_port = args.ws_port
        self.ws_path = args.ws_path
        self.http = args.http
        self.auth_port = args.auth_port
        self.auth_key = args.auth_key


class Conn:
    """A paho client with its callbacks turned into queues."""

    def __init__(self, broker, version=V5, client_id=None, transport="tcp", clean=True, expiry=None,
                 will=None, port=None, username=None, password=None, keepalive=30):
        self.version = version
        self.client_id = client_id if client_id is not None else "t-" + uuid.uuid4().hex[:10]
        kwargs = {}
        if version == V311:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=version, transport=transport, **kwargs)
        if transport == "websockets":
            self.client.ws_set_options(path=broker.ws_path)
        self.messages = queue.Queue()
        self.acks = {}
        self.ack_event = threading.Condition()
        self.connack = queue.Queue()
        self.gone = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, props: self.connack.put((flags, rc, props))
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_subscribe = self._acked
        self.client.on_publish = self._published
        self.client.on_unsubscribe = self._acked
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.gone.put(rc)
        if will:
            topic, payload, qos, props = will
            self.client.will_set(topic, payload, qos=qos, properties=props)
        if username is not None:
            self.client.username_pw_set(username, password)
        # Redelivery on reconnect is the broker's job here, not paho's own retries.
        self.client.reconnect_delay_set(60, 60)
        connect = {"keepalive": keepalive}
        if version == V5:
            connect["clean_start"] = clean
            props = Properties(PacketTypes.CONNECT)
            if expiry is not None:
                props.SessionExpiryInterval = expiry
            connect["properties"] = props
        target_port = port or (broker.ws_port if transport == "websockets" else broker.port)
        self.client.connect(broker.host, target_port, **connect)
        self.client.loop_start()
        self.flags, self.rc, self.props = self.connack.get(timeout=WAIT)

    def _acked(self, client, userdata, mid, codes, props):
        with self.ack_event:
            self.acks[mid] = codes
            self.ack_event.notify_all()

    def _published(self, client, userdata, mid, rc, props):
        with self.ack_event:
            self.acks[mid] = rc
            self.ack_event.notify_all()

    def wait_ack(self, mid):
        with self.ack_event:
            ok = self.ack_event.wait_for(lambda: mid in self.acks, timeout=WAIT)
            assert ok, f"no acknowledgement for mid {mid}"
            return self.acks.pop(mid)

    def subscribe(self, topic, qos=0, **options):
        if self.version == V5:
            opts = mqtt.SubscribeOptions(qos=qos, **options)
            result, mid = self.client.subscribe(topic, options=opts)
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        return [int(getattr(c, "value", c)) for c in self.wait_ack(mid)]

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos == 0:
            return 0
        rc = self.wait_ack(info.mid)
        return int(getattr(rc, "value", rc))

    def recv(self, timeout=WAIT):
        return self.messages.get(timeout=timeout)

    def nothing(self, wait=0.4):
        try:
            msg = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"expected nothing, got {msg.topic} {msg.payload!r}")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def crash(self):
        """Drops the connection without a DISCONNECT, as a device losing power does."""
        self.client.loop_stop()
        self.client.socket().close()


def raw_connect(broker, level=4, keepalive=60, client_id=b"raw"):
    """A raw CONNECT over a plain socket; returns the socket and the CONNACK bytes."""
    s = socket.create_connection((broker.host, broker.port), timeout=WAIT)
    body = struct.pack("!H", 4) + b"MQTT" + bytes([level, 0x02]) + struct.pack("!H", keepalive)
    if level == 5:
        body += b"\x00"
    body += struct.pack("!H", len(client_id)) + client_id
    s.sendall(bytes([0x10, len(body)]) + body)
    return s, s.recv(64)


def read_until_closed(s, limit=WAIT):
    s.settimeout(limit)
    data = b""
    start = time.monotonic()
    while True:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


def topic(base):
    return f"suite/{uuid.uuid4().hex[:8]}/{base}"


# ---------------------------------------------------------------- scenarios on both brokers

def each_qos_end_to_end(broker):
    for version in (V311, V5):
        for transport in ("tcp", "websockets"):
            if transport == "websockets" and not broker.ws_port:
                continue
            t = topic("qos")
            sub = Conn(broker, version, transport=transport)
            pub = Conn(broker, version, transport=transport)
            assert sub.subscribe(t, 2) == [2]
            for qos in (0, 1, 2):
                payload = f"q{qos}".encode()
                pub.publish(t, payload, qos)
                msg = sub.recv()
                assert (msg.topic, msg.payload, msg.qos) == (t, payload, qos), (version, transport, msg.qos)
            # The lower of the publication's QoS and the subscription's.
            t0 = topic("downgrade")
            assert sub.subscribe(t0, 1) == [1]
            pub.publish(t0, b"x", 2)
            assert sub.recv().qos == 1
            sub.close()
            pub.close()


def retained_set_get_clear(broker):
    for version in (V311, V5):
        t = topic("state")
        pub = Conn(broker, version)
        pub.publish(t, b"on", 1, retain=True)
        sub = Conn(broker, version)
        sub.subscribe(t, 1)
        msg = sub.recv()
        assert (msg.payload, msg.retain) == (b"on", True)
        pub.publish(t, b"", 1, retain=True)
        cleared = sub.recv()
        assert cleared.payload == b"" and not cleared.retain
        late = Conn(broker, version)
        late.subscribe(t, 1)
        late.nothing()
        for c in (pub, sub, late):
            c.close()


def will_on_unclean_end_only(broker):
    for version in (V311, V5):
        base = topic("will")
        watcher = Conn(broker, version)
        watcher.subscribe(base + "/#", 1)
        clean = Conn(broker, version, will=(base + "/clean", b"gone", 1, None))
        crash = Conn(broker, version, will=(base + "/crash", b"gone", 1, None))
        clean.close()
        crash.crash()
        msg = watcher.recv()
        assert (msg.topic, msg.payload) == (base + "/crash", b"gone"), msg.topic
        watcher.nothing()
        watcher.close()


def will_delay(broker):
    base = topic("delayed")
    watcher = Conn(broker, V5)
    watcher.subscribe(base, 1)
    props = Properties(PacketTypes.WILLMESSAGE)
    props.WillDelayInterval = 1
    device = Conn(broker, V5, client_id="delay-" + uuid.uuid4().hex[:6], expiry=30, clean=True,
                  will=(base, b"late", 1, props))
    started = time.monotonic()
    device.crash()
    msg = watcher.recv()
    waited = time.monotonic() - started
    assert msg.payload == b"late" and waited >= 0.8, waited
    watcher.close()


def persistent_session_queues_qos_1_and_2(broker):
    for version in (V311, V5):
        t = topic("offline")
        cid = "persist-" + uuid.uuid4().hex[:8]
        device = Conn(broker, version, client_id=cid, clean=False, expiry=300)
        device.subscribe(t + "/#", 2)
        device.close()
        pub = Conn(broker, version)
        pub.publish(t + "/a", b"zero", 0)
        pub.publish(t + "/b", b"one", 1)
        pub.publish(t + "/c", b"two", 2)
        device = Conn(broker, version, client_id=cid, clean=False, expiry=300)
        assert device.flags.session_present, version
        got = sorted((device.recv().payload for _ in range(2)))
        assert got == [b"one", b"two"], got
        device.nothing()
        device.close()
        again = Conn(broker, version, client_id=cid, clean=True)
        assert not again.flags.session_present
        again.close()
        pub.close()


def wildcards_and_dollar_topics(broker):
    base = topic("w")
    c = Conn(broker, V311)
    c.subscribe(base + "/+/temp", 0)
    c.subscribe(base + "/room/#", 0)
    c.subscribe("#", 0)
    c.publish(base + "/kitchen/temp", b"1")
    c.publish(base + "/room", b"2")
    c.publish(base + "/room/a/b", b"3")
    got = []
    try:
        while True:
            got.append((c.recv(timeout=1).topic))
    except queue.Empty:
        pass
    assert all(not t.startswith("$") for t in got), got
    mine = sorted(t for t in got if t.startswith(base))
    # Each subscription that matches delivers; "#" matches every one of them.
    assert sorted(set(mine)) == sorted({base + "/kitchen/temp", base + "/room", base + "/room/a/b"}), mine
    c.close()
    sys_conn = Conn(broker, V311)
    sys_conn.subscribe("$SYS/broker/uptime", 0)
    msg = sys_conn.recv(timeout=15)
    assert msg.payload.endswith(b"seconds"), msg.payload
    sys_conn.close()


def shared_subscriptions(broker):
    t = topic("jobs")
    group = "g" + uuid.uuid4().hex[:6]
    a, b = Conn(broker, V5), Conn(broker, V5)
    a.subscribe(f"$share/{group}/{t}", 1)
    b.subscribe(f"$share/{group}/{t}", 1)
    pub = Conn(broker, V5)
    for i in range(10):
        pub.publish(t, str(i).encode(), 1)
    got_a, got_b = [], []
    for conn, out in ((a, got_a), (b, got_b)):
        try:
            while True:
                out.append(int(conn.recv(timeout=1).payload))
        except queue.Empty:
            pass
    assert sorted(got_a + got_b) == list(range(10)), (got_a, got_b)
    assert got_a and got_b, (got_a, got_b)
    for c in (a, b, pub):
        c.close()


def v5_properties_and_options(broker):
    t = topic("v5")
    sub = Conn(broker, V5)
    sub.subscribe(t, 1, noLocal=True, retainAsPublished=True)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("unit", "celsius")
    props.ContentType = "text/plain"
    props.MessageExpiryInterval = 60
    sub.publish(t, b"own", 1)
    other = Conn(broker, V5)
    other.publish(t, b"21", 1, retain=True, props=props)
    msg = sub.recv()
    assert msg.payload == b"21" and msg.retain, (msg.payload, msg.retain)
    assert ("unit", "celsius") in msg.properties.UserProperty
    assert msg.properties.ContentType == "text/plain"
    assert 0 < msg.properties.MessageExpiryInterval <= 60
    sub.nothing()
    other.publish(t, b"", 1, retain=True)
    for c in (sub, other):
        c.close()


def keep_alive_timeout(broker):
    s, connack = raw_connect(broker, level=4, keepalive=1, client_id=b"sleepy-" + uuid.uuid4().hex[:6].encode())
    assert connack[:4] == b"\x20\x02\x00\x00", connack
    _, waited = read_until_closed(s, limit=20)
    # livehub closes at 1.5 s; Mosquitto checks keep-alives on a coarser tick, within seconds.
    assert 1.3 <= waited <= 12, waited


def malformed_packets(broker):
    s, connack = raw_connect(broker, level=3)
    assert connack[:4] == b"\x20\x02\x00\x01", connack
    s, connack = raw_connect(broker, level=5, client_id=b"bad-" + uuid.uuid4().hex[:6].encode())
    assert connack[0] == 0x20 and connack[3] == 0, connack
    # A PUBLISH with QoS 3 is malformed: a v5 broker says so (0x81) and closes.
    s.sendall(bytes([0x36, 5, 0, 1, ord("a"), 0, 1]))
    data, _ = read_until_closed(s)
    assert data[:1] in (b"", b"\xe0"), data
    if data:
        assert data[2] == 0x81, data
    # Everyone else is unaffected.
    c = Conn(broker, V311)
    t = topic("alive")
    c.subscribe(t, 0)
    c.publish(t, b"ok")
    assert c.recv().payload == b"ok"
    c.close()


BOTH = [each_qos_end_to_end, retained_set_get_clear, will_on_unclean_end_only, will_delay,
        persistent_session_queues_qos_1_and_2, wildcards_and_dollar_topics, shared_subscriptions,
        v5_properties_and_options, keep_alive_timeout, malformed_packets]


# ---------------------------------------------------------------- livehub only: the bridge

def http_get(broker, path):
    with urllib.request.urlopen(broker.http + path, timeout=WAIT) as r:
        return json.load(r)


def http_publish(broker, channel, data):
    body = json.dumps({"channel": channel, "data": data}).encode()
    request = urllib.request.Request(broker.http + "/api/publish", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=WAIT) as r:
        return json.load(r)


def mqtt_to_every_web_transport(broker):
    import asyncio
    import websockets

    t = topic("bridge")

    async def run():
        ws_url = broker.http.replace("http://", "ws://") + "/ws"
        async with websockets.connect(ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            await ws.send(json.dumps({"id": 1, "action": "subscribe", "channels": [t]}))
            while json.loads(await ws.recv()).get("type") != "subscribed":
                pass
            sse = urllib.request.urlopen(broker.http + "/sse?channel=" + t, timeout=WAIT)
            poll_result = {}

            def long_poll():
                with urllib.request.urlopen(broker.http + "/poll?channel=" + t + "&timeout=8", timeout=WAIT) as r:
                    poll_result["body"] = r.read()

            poller = threading.Thread(target=long_poll)
            poller.start()
            time.sleep(0.5)
            pub = Conn(broker, V5)
            pub.publish(t, b'{"t": 21.5}', 1)
            pub.publish(t, b"\x00\xffraw", 1)
            pub.close()
            for want in ({"t": 21.5}, None):
                m = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                while m.get("type") != "message":
                    m = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                if want is None:
                    assert m.get("encoding") == "base64" and base64.b64decode(m["data"]) == b"\x00\xffraw", m
                else:
                    assert m["data"] == want, m
            line = b""
            while b"21.5" not in line:
                line = sse.readline()
            poller.join(WAIT)
            assert b"21.5" in poll_result.get("body", b""), poll_result
            # Recovery: a web client that missed them reads them from the channel's history.
            history = http_get(broker, f"/api/channels/{t}/history?limit=10")
            assert history["publications"][0]["data"] == {"t": 21.5}, history
            await ws.send(json.dumps({"id": 2, "action": "subscribe", "channels": [t + "x"]}))

    asyncio.run(run())


def http_to_mqtt(broker):
    t = topic("fromweb")
    sub = Conn(broker, V311)
    sub.subscribe(t, 1)
    http_publish(broker, t, {"from": "http"})
    msg = sub.recv()
    assert json.loads(msg.payload) == {"from": "http"}, msg.payload
    sub.close()


def refused_permissions(broker):
    if not broker.auth_port:
        return
    bad = Conn(broker, V5, port=broker.auth_port, username="key", password="wrong-key")
    assert int(bad.rc.value) == 0x86, bad.rc
    bad.client.loop_stop()
    for version in (V311, V5):
        c = Conn(broker, version, port=broker.auth_port, username="key", password=broker.auth_key)
        assert int(getattr(c.rc, "value", c.rc)) == 0, c.rc
        assert c.subscribe("public/x", 1) == [1]
        assert c.subscribe("private/x", 1) == [0x87 if version == V5 else 0x80]
        rc = c.publish("public/x", b"1", 1)
        assert rc == (0x87 if version == V5 else 0), rc
        c.close()


LIVEHUB_ONLY = [mqtt_to_every_web_transport, http_to_mqtt, refused_permissions]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws-port", type=int)
    parser.add_argument("--ws-path", default="/mqtt")
    parser.add_argument("--http")
    parser.add_argument("--auth-port", type=int)
    parser.add_argument("--auth-key")
    broker = Broker(parser.parse_args())
    scenarios = BOTH + (LIVEHUB_ONLY if broker.http else [])
    failed = 0
    for scenario in scenarios:
        started = time.monotonic()
        try:
            scenario(broker)
            print(f"ok   {broker.name:8} {scenario.__name__} ({time.monotonic() - started:.1f} s)")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next runs
            failed += 1
            print(f"FAIL {broker.name:8} {scenario.__name__}: {type(e).__name__}: {e}")
    print(f"{broker.name}: {len(scenarios) - failed} of {len(scenarios)} scenarios passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
