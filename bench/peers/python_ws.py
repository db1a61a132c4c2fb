#!/usr/bin/env python3
"""Peer for `livehub bench --target python-ws`: the course's shape of a WebSocket broadcast
server with the `websockets` package, a set of connected clients and one broadcast loop.

    python3 bench/peers/python_ws.py --port P --rate R --payload B

Clients connect on `/` and stay in the set until they close; what they send is ignored. The
loop sends {"bseq":n,"bts":<Unix µs>,"pad":"x…"} to all of them, R times a second (R = 0: back
to back, yielding to the event loop between broadcasts).
"""

import argparse
import asyncio
import json
import signal
import time

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

HOST = "127.0.0.1"

CLIENTS = set()
# Set while at least one client is connected, so that an empty server does not spin.
SOMEONE = asyncio.Event()


async def handler(websocket):
    if websocket.request.path != "/":
        await websocket.close(1008, "subscribe on /")
        return
    CLIENTS.add(websocket)
    SOMEONE.set()
    try:
        # Read and drop what the client sends, so that its pings and closes are processed.
        async for _ in websocket:
            pass
    except ConnectionClosed:
        pass  # an abrupt close is as good a goodbye as any
    finally:
        CLIENTS.discard(websocket)
        if not CLIENTS:
            SOMEONE.clear()


async def broadcast_loop(rate, payload):
    pad = "x" * payload
    period = 1.0 / rate if rate > 0 else 0.0
    seq = 0
    next_tick = time.monotonic()
    while True:
        if not SOMEONE.is_set():
            await SOMEONE.wait()
            next_tick = time.monotonic()  # the grid starts with the first client
        seq += 1
        message = json.dumps(
            {"bseq": seq, "bts": time.time_ns() // 1000, "pad": pad}, separators=(",", ":")
        )
        broadcast(CLIENTS, message)
        if period == 0.0:
            await asyncio.sleep(0)
            continue
        # Ticks are laid on a fixed grid from the monotonic clock, so the time spent
        # broadcasting does not slow the rate down. A loop more than a second late (the
        # server is saturated) starts a new grid instead of bursting to catch up.
        next_tick += period
        now = time.monotonic()
        if next_tick < now - 1.0:
            next_tick = now
        await asyncio.sleep(max(0.0, next_tick - now))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="broadcasts per second; 0 = back to back")
    parser.add_argument("--payload", type=int, default=64, help="characters of padding in each message")
    args = parser.parse_args()
    if args.rate < 0 or args.payload < 0:
        parser.error("--rate and --payload must not be negative")

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    # Compression off, like the other peers: on loopback it only costs CPU.
    async with serve(handler, HOST, args.port, compression=None, backlog=4096) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening {HOST}:{port}", flush=True)
        loop_task = asyncio.create_task(broadcast_loop(args.rate, args.payload))
        await stop
        loop_task.cancel()
        # Leaving the `async with` closes every connection (code 1001), without waiting long.
        server.close(close_connections=True)


if __name__ == "__main__":
    asyncio.run(main())
