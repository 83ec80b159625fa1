"""CPU time and memory of the server processes, read from the OS with psutil. A name stands for one
pid or a list of them (a service's replicas, the nodes of a Redis Cluster), each counted with its
children, so a server that forks workers is measured whole."""

import time
from pathlib import Path

import psutil

Pids = dict[str, int | list[int]]


def process_tree(pids: int | list[int]) -> list[psutil.Process]:
    found = []
    for pid in [pids] if isinstance(pids, int) else pids:
        try:
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return found


def cpu_snapshot(pids: Pids) -> dict[str, dict[int, float]]:
    """user+system CPU seconds of each named process and its children, by pid."""
    snapshot: dict[str, dict[int, float]] = {}
    for name, pid in pids.items():
        snapshot[name] = {}
        for process in process_tree(pid):
            try:
                times = process.cpu_times()
                snapshot[name][process.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
    return snapshot


def cpu_delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    return {
        name: sum(seconds - before.get(name, {}).get(pid, 0.0) for pid, seconds in by_pid.items())
        for name, by_pid in after.items()
    }


def rss_now(pids: Pids) -> dict[str, int]:
    """Resident memory in bytes of each named process and its children."""
    found = {}
    for name, pid in pids.items():
        total = 0
        for process in process_tree(pid):
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        found[name] = total
    return found


def rss_high_water(pids: Pids) -> dict[str, int | None]:
    """Peak RSS since each process started (Linux VmHWM), summed over the tree; None elsewhere."""
    found: dict[str, int | None] = {}
    for name, pid in pids.items():
        total = 0
        for process in process_tree(pid):
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                total = None
                break
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        found[name] = total
    return found


def wait_quiet(pids: Pids, *, busy_fraction: float = 0.05, interval: float = 0.5, timeout: float = 20.0) -> float:
    """Wait until the processes together use less than `busy_fraction` of one core over `interval`
    (work queued by the previous run, such as password hashes, has drained); the seconds they
    stayed busy (0.0 when they were quiet at once)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_snapshot(pids)
        time.sleep(interval)
        if sum(cpu_delta(before, cpu_snapshot(pids)).values()) < busy_fraction * interval:
            return time.monotonic() - started - interval
    return time.monotonic() - started
