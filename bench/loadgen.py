"""One timed load run, in its own process (locust runs on gevent, which patches the standard
library; the orchestrator in bench/run.py stays plain Python):

    python -m bench.loadgen CONFIG.json RESULT.json

CONFIG names the operation, the target URL, the concurrency, the warm-up and timed seconds, the
tokens and credentials of the bench users, and the pids of the server processes to measure.

Locust's headless runner drives `concurrency` FastHttpUsers, each sending its next request as soon
as the previous one answered (a closed loop, no think time). Once every user is spawned and a short
warm-up has passed, the timed window opens: the server processes' CPU times are read (psutil,
user+system, each process with its children), every request that completes inside the window is
recorded with its exact latency and status, RSS is sampled, and the window closes after `seconds`.
CPU used in the window divided by the requests completed in it is the CPU per request.
"""

import json
import math
import random
import sys
import time
import uuid
from collections import Counter
from urllib.parse import urlencode

import gevent.event
import psutil
from locust import FastHttpUser, constant, events, task  # first: locust monkey-patches the standard library
from locust.env import Environment

from bench.procs import cpu_delta, cpu_snapshot, rss_now

INSUFFICIENT_FUNDS = "Insufficient funds"
RSS_SAMPLE_SECONDS = 0.25

CONFIG: dict = json.loads(open(sys.argv[1]).read()) if __name__ == "__main__" else {}


def _tokens() -> list[str]:
    return CONFIG["tokens"]


def _credentials() -> list[list[str]]:
    return CONFIG["credentials"]


class BenchUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {random.choice(_tokens())}"}


class Balance(BenchUser):
    @task
    def balance(self) -> None:
        self.client.get("/wallet/balance", headers=self.bearer())


class Spend(BenchUser):
    @task
    def spend(self) -> None:
        self.client.post(
            "/wallet/spend",
            json={"amount": 0.01, "description": "bench"},
            headers={**self.bearer(), "Idempotency-Key": uuid.uuid4().hex},
        )


class Buy(BenchUser):
    @task
    def buy(self) -> None:
        self.client.post("/items/buy/3", headers={**self.bearer(), "Idempotency-Key": uuid.uuid4().hex})


class ItemsList(BenchUser):
    @task
    def items(self) -> None:
        self.client.get("/items/list")


class Login(BenchUser):
    @task
    def login(self) -> None:
        username, password = random.choice(_credentials())
        self.client.post(
            "/auth/login",
            data=urlencode({"username": username, "password": password}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


class Calibration(BenchUser):
    @task
    def root(self) -> None:
        self.client.get("/")


USER_CLASSES = {
    "balance": Balance,
    "spend": Spend,
    "buy": Buy,
    "list": ItemsList,
    "login": Login,
    "calibration": Calibration,
}


class Recorder:
    """What completes inside the timed window: latencies (ms) and outcomes."""

    def __init__(self) -> None:
        self.recording = False
        self.latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()

    def on_request(self, response_time, response=None, exception=None, **_) -> None:
        if not self.recording:
            return
        self.latencies.append(response_time)
        self.outcomes[outcome_of(response, exception)] += 1


def outcome_of(response, exception) -> str:
    """'200', '400 insufficient funds', '504', or '0 ConnectionRefusedError' for no HTTP answer."""
    status = getattr(response, "status_code", 0) or 0
    if status == 0:
        return f"0 {type(exception).__name__ if exception else 'no response'}"
    if status == 400:
        try:
            if INSUFFICIENT_FUNDS in (response.text or ""):
                return "400 insufficient funds"
        except Exception:  # an unreadable body is just a 400
            pass
    return str(status)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle, over all cores."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def run(config: dict) -> dict:
    user_class = USER_CLASSES[config["operation"]]
    pids: dict = config.get("pids") or {}
    concurrency, seconds, warmup = config["concurrency"], config["seconds"], config["warmup_seconds"]

    recorder = Recorder()
    events.request.add_listener(recorder.on_request)
    spawned = gevent.event.Event()
    events.spawning_complete.add_listener(lambda user_count, **_: spawned.set())

    env = Environment(user_classes=[user_class], events=events, host=config["url"])
    runner = env.create_local_runner()
    runner.start(concurrency, spawn_rate=concurrency)
    if not spawned.wait(timeout=60):
        raise RuntimeError("locust did not spawn its users within 60 s")
    gevent.sleep(warmup)

    peak_rss: dict[str, int] = dict.fromkeys(pids, 0)

    def sample_rss() -> None:
        while True:
            for name, rss in rss_now(pids).items():
                peak_rss[name] = max(peak_rss[name], rss)
            gevent.sleep(RSS_SAMPLE_SECONDS)

    own = psutil.Process()
    own_before = own.cpu_times()
    machine_before = machine_busy_seconds()
    cpu_before = cpu_snapshot(pids)
    started = time.perf_counter()
    recorder.recording = True
    sampler = gevent.spawn(sample_rss)
    gevent.sleep(seconds)
    recorder.recording = False
    elapsed = time.perf_counter() - started
    cpu_after = cpu_snapshot(pids)
    own_after = own.cpu_times()
    machine_after = machine_busy_seconds()
    sampler.kill()
    for name, rss in rss_now(pids).items():
        peak_rss[name] = max(peak_rss[name], rss)
    runner.quit()

    latencies = sorted(recorder.latencies)
    completed = len(latencies)
    return {
        "operation": config["operation"],
        "url": config["url"],
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests": completed,
        "requests_per_second": completed / elapsed if elapsed else 0.0,
        "latency_ms": {
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else None,
            "mean": sum(latencies) / completed if completed else None,
        },
        "outcomes": dict(sorted(recorder.outcomes.items())),
        "cpu_seconds": cpu_delta(cpu_before, cpu_after) if pids else None,
        "peak_rss_bytes": peak_rss if pids else None,
        "loadgen_cpu_seconds": (own_after.user + own_after.system) - (own_before.user + own_before.system),
        "machine_busy_cpu_seconds": machine_after - machine_before,
    }


def main() -> None:
    result = run(CONFIG)
    with open(sys.argv[2], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
