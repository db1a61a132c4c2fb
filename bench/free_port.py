"""Prints a free TCP port on 127.0.0.1 for the next benchmarked server, below the ephemeral range.

A port from that range (what a bind to port 0 returns) may still be held by the thousands of
closing sockets of the run before, and the load generator's own source ports come from it. A
plain bind (no SO_REUSEADDR) fails if any socket, TIME_WAIT included, still has the port.
Shared by bench/compare.sh and bench/mqtt.sh.
"""
import random
import socket

low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
candidates = random.sample(range(10000, low), min(200, low - 10000)) if low > 10100 else []
for port in candidates + [0]:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(s.getsockname()[1])
        break
