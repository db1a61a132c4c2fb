"""A second, independent SignalR client against the livehub binary: Python's signalrcore (pinned
in tests/requirements.txt), over WebSockets with JSON and MessagePack, and over long polling.

For each: connect (signalrcore negotiates without a version, so this is negotiate version 0),
subscribe, receive a publication made over the HTTP API, publish with a result, and (over
WebSockets) get an error completion for a read-only channel. Run by run.sh with LIVEHUB_BIN set; exits 1 on a failure.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.protocol.messagepack_protocol import MessagePackHubProtocol
from signalrcore.types import HttpTransportType

WAIT = 10.0


def start_server():
    binary = os.environ["LIVEHUB_BIN"]
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--no-sources", "--log", "info"],
        stderr=subprocess.PIPE,
        text=True,
        # No data directory and no fixed MQTT port: parallel servers must not share either.
        env={**os.environ, "LIVEHUB_STORE": "memory", "LIVEHUB_MQTT_LISTEN": "127.0.0.1:0"},
    )
    deadline = time.time() + WAIT
    while time.time() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"http://([0-9.]+:\d+)", line)
        if match:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, f"http://{match.group(1)}"
    proc.kill()
    raise SystemExit("livehub did not print its URL")


def publish(url, channel, data):
    body = json.dumps({"channel": channel, "data": data}).encode()
    request = urllib.request.Request(f"{url}/api/publish", body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def wait(event, what):
    if not event.wait(WAIT):
        raise AssertionError(f"timed out waiting for {what}")


def case(url, transport, msgpack):
    name = f"{transport.value} + {'messagepack' if msgpack else 'json'}"
    channel = f"py/{transport.value}/{int(msgpack)}"
    builder = HubConnectionBuilder().with_url(f"{url}/hubs/live", options={"transport": transport})
    if msgpack:
        builder = builder.with_hub_protocol(MessagePackHubProtocol())
    hub = builder.build()
    opened, received, subscribed, published, failed = (threading.Event() for _ in range(5))
    got, results, errors = [], {}, []

    def on_receive(args):
        got.append(args)
        received.set()

    def on_error(completion):
        errors.append(completion.error)
        failed.set()

    hub.on_open(opened.set)
    hub.on("Receive", on_receive)
    hub.on_error(on_error)
    hub.start()
    try:
        wait(opened, f"{name}: the connection")
        hub.send("Subscribe", [[channel]], on_invocation=lambda c: subscribed.set())
        wait(subscribed, f"{name}: Subscribe's completion")
        publish(url, channel, {"n": 1})
        wait(received, f"{name}: the publication")
        chan, message = got[0]
        assert chan == channel and message["data"] == {"n": 1} and message["offset"] == 1, got

        def on_published(completion):
            results["publish"] = completion.result
            published.set()

        hub.send("Publish", [channel, [1, 2]], on_invocation=on_published)
        wait(published, f"{name}: Publish's completion")
        assert results["publish"]["offset"] == 2, results
        # signalrcore 1.0.2's long-polling client takes one record per poll body and keeps the
        # rest until the next body comes, so an answer queued behind a publication waits for the
        # poll after it: the error case runs over WebSockets only.
        if transport == HttpTransportType.web_sockets:
            hub.send("Publish", ["$sys/presence", 1])
            wait(failed, f"{name}: the error completion")
            assert errors[0].startswith("read_only_channel"), errors
        print(f"ok - signalrcore {name}")
    finally:
        hub.stop()


def main():
    proc, url = start_server()
    try:
        case(url, HttpTransportType.web_sockets, False)
        case(url, HttpTransportType.web_sockets, True)
        case(url, HttpTransportType.long_polling, False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"not ok - {e}", file=sys.stderr)
        sys.exit(1)
