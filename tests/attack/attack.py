#!/usr/bin/env python3
"""The attack suite: hostile clients against the release binary on loopback, while a legitimate
client keeps connecting, publishing and receiving.

Each attack runs for a bounded time with a bounded number of sockets from several 127.x
addresses, and stops by itself. For each it reports the server's memory per hostile socket (from
/proc/<pid>/status) and the legitimate client's latency from publish to receipt, and checks that
every legitimate round completed within ROUND_BOUND: what the server must keep doing under
attack, not how fast (speed belongs in the benchmarks).

    tests/attack/attack.py BINARY            # run every attack, print the table
    tests/attack/attack.py BINARY --write    # ... and put it into docs/security.md

Standard library only; targets 127.0.0.0/8 only.
"""

import argparse
import asyncio
import json
import os
import pathlib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CERTS = ROOT / "crates/livehub-server/tests/certs"
# Attackers connect from these; the legitimate client from 127.0.0.1.
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 6)]
# Long enough that every hostile socket is open and every timeout has had its turn.
ATTACK_SECS = float(os.environ.get("ATTACK_SECS", "12"))
# A legitimate round (connect, publish, receive) must complete within this, under any attack.
ROUND_BOUND = 5.0
# Every limit the suite relies on, set small enough that a few thousand sockets reach them.
CONFIG = """
shutdown_grace_secs = 2
[limits]
request_head_timeout_secs = 3
request_body_timeout_secs = 3
message_timeout_secs = 3
max_half_open_per_ip = 256
max_half_open = 600
max_reassembly_bytes = 8388608
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    """The release binary, started on a free loopback port with the suite's configuration."""

    def __init__(self, binary: str, tls: bool):
        self.port = free_port()
        self.tls = tls
        self.dir = tempfile.TemporaryDirectory(prefix="livehub-attack-")
        config = CONFIG
        if tls:
            config += f"[tls]\ncert_file = '{CERTS / 'a.pem'}'\nkey_file = '{CERTS / 'a.key'}'\n"
        path = pathlib.Path(self.dir.name) / "livehub.toml"
        path.write_text(config)
        env = dict(os.environ, LIVEHUB_CONFIG=str(path), LIVEHUB_STORE="memory")
        self.process = subprocess.Popen(
            [binary, "serve", "--no-sources", "--listen", f"127.0.0.1:{self.port}", "--log", "error"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def context(self):
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(CERTS / "ca.pem"))
        context.check_hostname = False
        return context

    async def wait_ready(self):
        for _ in range(100):
            try:
                reader, writer = await self.open("127.0.0.1")
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    async def open(self, source: str, tls: bool = True):
        context = self.context() if tls else None
        return await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(source, 0), ssl=context,
            server_hostname="localhost" if context else None)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.dir.cleanup()


async def request(server: Server, text: bytes, source: str = "127.0.0.1") -> bytes:
    reader, writer = await server.open(source)
    writer.write(text)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def retrying(what):
    """`what()`, again after a short pause when the connection was refused, reset or shed: what
    any real client does. The caller bounds the whole."""
    while True:
        try:
            return await what()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.05)


async def legitimate(server: Server, ready: asyncio.Event, stop: asyncio.Event, latencies: list,
                     failures: list):
    """An SSE subscriber on `legit`, opened before the attack, and every 100 ms a new connection
    that publishes to it: the time from publish to receipt, for each round."""
    async def subscribe():
        reader, writer = await server.open("127.0.0.1")
        writer.write(b"GET /sse?channel=legit HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        await reader.readuntil(b"event: connected")
        return reader, writer
    reader, writer = await asyncio.wait_for(retrying(subscribe), ROUND_BOUND)
    ready.set()
    n = 0
    while not stop.is_set():
        n += 1
        body = json.dumps({"channel": "legit", "data": {"n": n}}, separators=(",", ":")).encode()
        started = time.monotonic()
        try:
            async def publish():
                answer = await request(server, b"POST /api/publish HTTP/1.1\r\nHost: localhost\r\n"
                                       b"Connection: close\r\nContent-Type: application/json\r\n"
                                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                if b" 200 " not in answer.split(b"\r\n", 1)[0]:
                    raise OSError(f"publish answered {answer[:80]!r}")

            async def round_trip():
                await retrying(publish)
                marker = f'"n":{n}}}'.encode()
                seen = b""
                while marker not in seen:
                    chunk = await reader.read(65536)
                    if not chunk:
                        raise RuntimeError("the SSE stream ended")
                    seen = seen[-256:] + chunk
            await asyncio.wait_for(round_trip(), ROUND_BOUND)
            latencies.append((time.monotonic() - started) * 1000)
        except Exception as error:  # noqa: BLE001 - every failure is reported
            failures.append(f"round {n}: {error!r}")
            if isinstance(error, RuntimeError):
                break
        await asyncio.sleep(0.1)
    writer.close()


# -------------------------------------------------------------------------------------------
# The attacks. Each opens its sockets, keeps them as hostile as it can until `stop`, and
# returns how many it opened.

async def hold(server, sources, count, behave, stop):
    """Opens `count` plain TCP sockets from `sources` in turn (on a TLS server, a socket that
    never starts its handshake) and runs `behave` on each until `stop`."""
    async def one(i):
        try:
            reader, writer = await server.open(sources[i % len(sources)], tls=False)
        except (OSError, ssl.SSLError, asyncio.TimeoutError):
            return
        try:
            await behave(reader, writer, stop)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return count


async def silent(reader, writer, stop):
    await stop.wait()


async def slow_head(reader, writer, stop):
    for byte in b"GET /sse?channel=x HTTP/1.1\r\nHost: localhost\r\n" * 100:
        if stop.is_set():
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.5)


async def slow_body(reader, writer, stop):
    writer.write(b"POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
    while not stop.is_set():
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.5)


async def fragments(reader, writer, stop):
    writer.write(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    payload = b"x" * 60000
    # A text message's first fragment of 60,000 bytes, masked with a zero key, never finished.
    writer.write(bytes([0x01, 0x80 | 126]) + len(payload).to_bytes(2, "big") + b"\0\0\0\0" + payload)
    await writer.drain()
    while not stop.is_set():
        # Pongs, as a live client answers pings: they must not keep the message alive.
        writer.write(bytes([0x8A, 0x80]) + b"\0\0\0\0")
        await writer.drain()
        await asyncio.sleep(1)


async def read_flood(server, sources, count, stop):
    """Reads of unique channels (latest and history), as fast as one connection at a time goes."""
    n = 0
    while not stop.is_set() and n < count:
        n += 1
        path = f"/api/channels/flood/{n}" + ("/history" if n % 2 else "")
        try:
            text = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
            await request(server, text, sources[n % len(sources)])
        except OSError:
            pass
    await stop.wait()
    return n


ATTACKS = [
    ("silent TCP sockets", False, 3000, lambda s, stop: hold(s, ATTACKERS, 3000, silent, stop)),
    ("request heads drip-fed a byte every 0.5 s", False, 1000,
     lambda s, stop: hold(s, ATTACKERS, 1000, slow_head, stop)),
    ("request bodies drip-fed a byte every 0.5 s", False, 1000,
     lambda s, stop: hold(s, ATTACKERS, 1000, slow_body, stop)),
    ("silent TLS sockets (no handshake)", True, 3000, lambda s, stop: hold(s, ATTACKERS, 3000, silent, stop)),
    ("WebSocket messages left unfinished in fragments (60 KB each), pongs every second", False, 400,
     lambda s, stop: hold(s, ATTACKERS, 400, fragments, stop)),
    ("reads of unique channels (latest and history)", False, 20000,
     lambda s, stop: read_flood(s, ATTACKERS, 20000, stop)),
]


async def run_attack(binary, name, tls, count, attack):
    server = Server(binary, tls)
    try:
        await server.wait_ready()
        before = rss_kib(server.process.pid)
        stop, ready = asyncio.Event(), asyncio.Event()
        latencies, failures = [], []
        legit = asyncio.create_task(legitimate(server, ready, stop, latencies, failures))
        await asyncio.wait_for(ready.wait(), ROUND_BOUND)
        hostile = asyncio.create_task(attack(server, stop))
        peak = before
        deadline = time.monotonic() + ATTACK_SECS
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            peak = max(peak, rss_kib(server.process.pid))
        stop.set()
        _, count = await asyncio.gather(legit, hostile)
        await asyncio.sleep(1)
        after = rss_kib(server.process.pid)
        metrics = {}
        try:
            answer = await request(server, b"GET /api/metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            metrics = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        except (OSError, ValueError, IndexError):
            pass
        for failure in failures[:3]:
            print(f"  {failure}", flush=True)
        return {
            "attack": name, "sockets": count, "rss_before": before, "rss_peak": peak, "rss_after": after,
            "per_socket": (peak - before) / count, "rounds": len(latencies), "failures": failures,
            "p50": statistics.median(latencies) if latencies else None,
            "p99": None if not latencies else max(latencies) if len(latencies) < 100
            else statistics.quantiles(latencies, n=100)[98],
            "half_open": metrics.get("half_open"),
        }
    finally:
        server.stop()


def table(results) -> str:
    lines = ["| attack | hostile sockets or requests | server RSS before → peak → after, KiB | KiB per hostile socket (peak) | legitimate rounds | publish → receipt p50 / p99 ms |",
             "|---|---|---|---|---|---|"]
    for r in results:
        p50 = "–" if r["p50"] is None else f"{r['p50']:.1f}"
        p99 = "–" if r["p99"] is None else f"{r['p99']:.1f}"
        lines.append(f"| {r['attack']} | {r['sockets']:,} | {r['rss_before']:,} → {r['rss_peak']:,} → {r['rss_after']:,} "
                     f"| {r['per_socket']:.2f} | {r['rounds']} ok, {len(r['failures'])} failed | {p50} / {p99} |")
    return "\n".join(lines)


def write_docs(text: str):
    path = ROOT / "docs/security.md"
    doc = path.read_text()
    begin, end = "<!-- attack:begin -->", "<!-- attack:end -->"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc:
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc += f"\n{block}\n"
    path.write_text(doc)


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--write", action="store_true", help="put the table into docs/security.md")
    args = parser.parse_args()
    results = []
    for name, tls, count, attack in ATTACKS:
        print(f"attack: {name} ({count:,}, {ATTACK_SECS:g} s)", flush=True)
        results.append(await run_attack(args.binary, name, tls, count, attack))
    text = table(results)
    print(text)
    if args.write:
        write_docs(f"Measured by `tests/attack/attack.py` on {time.strftime('%Y-%m-%d')}, {ATTACK_SECS:g} s per attack, "
                   "release build, limits as in the script's configuration.\n\n" + text)
    failed = [(r["attack"], f) for r in results for f in r["failures"]]
    idle = [r["attack"] for r in results if r["rounds"] == 0]
    for attack, failure in failed:
        print(f"FAILED under '{attack}': {failure}", file=sys.stderr)
    for attack in idle:
        print(f"FAILED under '{attack}': no legitimate round completed", file=sys.stderr)
    print(f"{sum(r['rounds'] for r in results)} passed, {len(failed) + len(idle)} failed")
    return 1 if failed or idle else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
