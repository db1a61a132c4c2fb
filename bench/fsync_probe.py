"""How many synced writes a second this disk takes, by size: what bounds a group commit.

A durable commit of the SQLite store writes the transaction's pages to the write-ahead log and
then waits for one fdatasync, so its rate is bounded by the disk's synced-write latency for that
many bytes. This writes SIZE bytes and calls fdatasync, over and over for SECS seconds per size,
into a preallocated file (as SQLite reuses its log after a checkpoint), and prints the syncs per
second, the bytes per second and the latency of each.

    python3 bench/fsync_probe.py [DIR] [SECS]      defaults: target/tmp, 2 seconds per size

The file is removed at the end. Run it on the disk that holds the data directory.
"""
import os
import statistics
import sys
import tempfile
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "target/tmp"
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
SIZES = [512, 4096, 65536, 262144, 1048576, 4194304]
FILE_BYTES = 64 << 20

os.makedirs(directory, exist_ok=True)
fd, path = tempfile.mkstemp(prefix="fsync-probe.", dir=directory)
try:
    os.write(fd, b"\0" * FILE_BYTES)
    os.fsync(fd)
    print(f"| bytes per sync | syncs/s | MB/s | p50 | p99 | load average |")
    print(f"|---|---|---|---|---|---|")
    for size in SIZES:
        block = os.urandom(size)
        latencies, position, end = [], 0, time.monotonic() + secs
        while time.monotonic() < end:
            started = time.monotonic()
            os.pwrite(fd, block, position)
            os.fdatasync(fd)
            latencies.append(time.monotonic() - started)
            position = (position + size) % (FILE_BYTES - size)
        took = sum(latencies)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"| {size:,} | {len(latencies) / took:,.0f} | {len(latencies) * size / took / 1e6:,.1f} "
            f"| {statistics.median(latencies) * 1000:.2f} ms | {p99 * 1000:.2f} ms "
            f"| {open('/proc/loadavg').read().split()[0]} |",
            flush=True,
        )
finally:
    os.close(fd)
    os.remove(path)
