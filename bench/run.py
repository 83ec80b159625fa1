"""`make bench`: what each request costs the stack, measured through the gateway.

    python -m bench            # the full run (settings below)
    python -m bench --smoke    # 2 s per operation, 4 users, concurrency 4; exits 1 on an
                               # unexpected error or a broken ledger invariant

Settings (environment):
    BENCH_USERS=200         users created, each topped up to 100,100.00
    BENCH_CONCURRENCY=64    concurrent clients (locust FastHttpUsers, no think time)
    BENCH_SECONDS=15        timed seconds per operation (after spawning and a warm-up)
    BENCH_WARMUP=1          warm-up seconds before each timed window
    BENCH_GROWTH=10         memory growth: RSS of every process after the runs, then again after
    BENCH_GROWTH_BASE=50    registering BENCH_GROWTH x BENCH_GROWTH_BASE more users (at concurrency 8;
                            each costs a password hash, ~0.12 s here, so 10 x 50 = 500 by default
                            rather than 10 x BENCH_USERS); BENCH_GROWTH=0 skips it
    BENCH_OPERATIONS=...    a comma-separated subset of: balance,spend,buy,list,login
    BENCH_CALIBRATION=1     0 skips the calibration run (no CPU ratios then)
    BENCH_URL=http://...    drive a running stack instead of starting one; its processes are not
                            ours, so server CPU and memory are not measured (and no growth step)
    BENCH_REDIS_URL=...     with BENCH_URL: that stack's Redis, to make the admin that tops up
                            the users (without it users keep their 100.00)

Steps: start the stack on free ports in a temporary directory; run the calibration (a one-route
FastAPI app, bench/calibration_app.py, started with the gateway's own uvicorn command line) under
the same load; create the users and an admin (role set in Redis), log everyone in, top everyone
up; then per operation one timed locust run (bench/loadgen.py, its own process) followed by a
check of the ledger invariant for every user. Prints the tables and writes them as JSON to
bench/results/<timestamp>.json.
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.procs import rss_high_water, rss_now, wait_quiet
from devstack.stack import ROOT, SERVICES, Stack, free_port, wait_until

RESULTS_DIR = ROOT / "bench" / "results"
OPERATIONS = {
    "balance": "GET /wallet/balance",
    "spend": "POST /wallet/spend",
    "buy": "POST /items/buy/3",
    "list": "GET /items/list",
    "login": "POST /auth/login",
}
CALIBRATION = "calibration GET /"
PROCESSES = ["gateway", "auth", "wallet", "catalog", "redis"]
EXPECTED_OUTCOMES = {"400 insufficient funds"}  # the only non-2xx answer the targets allow
PASSWORD = "bench-password-42"
TOPUP_AMOUNT = "100000.00"  # the most one credit may add
CREDITS = ("REGISTER", "TOPUP", "REFUND")
DEBITS = ("SPEND", "BUY")
SETUP_CONCURRENCY = 8  # registration and login hash passwords: keep the queue short
# Issue 7's targets: CPU per request as a multiple of the calibration's, p99 in ms.
CPU_TARGETS = {"balance": 4.0, "spend": 4.0, "buy": 6.0}
P99_TARGETS_MS = {"balance": 50.0, "spend": 50.0}


@dataclass
class Settings:
    users: int = 200
    concurrency: int = 64
    seconds: float = 15.0
    warmup: float = 1.0
    growth: int = 10
    growth_base: int = 50
    calibration: bool = True
    operations: list[str] = field(default_factory=lambda: list(OPERATIONS))
    url: str | None = None
    redis_url: str | None = None
    smoke: bool = False


def settings_from(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds in all: 2 s per operation, 4 users")
    args = parser.parse_args(argv)
    env = os.environ
    settings = Settings(
        users=int(env.get("BENCH_USERS", 200)),
        concurrency=int(env.get("BENCH_CONCURRENCY", 64)),
        seconds=float(env.get("BENCH_SECONDS", 15)),
        warmup=float(env.get("BENCH_WARMUP", 1)),
        growth=int(env.get("BENCH_GROWTH", 10)),
        growth_base=int(env.get("BENCH_GROWTH_BASE", 50)),
        calibration=env.get("BENCH_CALIBRATION", "1") not in ("0", "no", "false", ""),
        url=env.get("BENCH_URL") or None,
        redis_url=env.get("BENCH_REDIS_URL") or None,
    )
    if env.get("BENCH_OPERATIONS"):
        settings.operations = [name.strip() for name in env["BENCH_OPERATIONS"].split(",") if name.strip()]
        unknown = set(settings.operations) - set(OPERATIONS)
        if unknown:
            parser.error(f"BENCH_OPERATIONS: unknown {', '.join(sorted(unknown))}; known: {', '.join(OPERATIONS)}")
    if args.smoke:
        settings.smoke, settings.users, settings.concurrency = True, 4, 4
        settings.seconds, settings.warmup, settings.growth, settings.calibration = 2.0, 0.5, 0, False
    if (
        min(settings.users, settings.concurrency) < 1
        or settings.seconds <= 0
        or min(settings.growth, settings.growth_base) < 0
    ):
        parser.error("BENCH_USERS and BENCH_CONCURRENCY must be >= 1, BENCH_SECONDS > 0, BENCH_GROWTH(_BASE) >= 0")
    if settings.url:
        settings.growth = 0  # RSS of processes that are not ours cannot be read
    return settings


def say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- users, tokens, money


@dataclass
class BenchUser:
    username: str
    user_id: int = 0
    token: str = ""


def token_subject(token: str) -> int:
    """The user id in a token's `sub` (read without verifying: we just got it from auth)."""
    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def bounded(concurrency: int, function, items) -> list:
    """`function(item)` for every item, at most `concurrency` at once."""
    slots = asyncio.Semaphore(concurrency)

    async def one(item):
        async with slots:
            return await function(item)

    return await asyncio.gather(*(one(item) for item in items))


async def send(client: httpx.AsyncClient, what: str, method: str, path: str, **kwargs) -> httpx.Response:
    """A set-up request, retried on 503/504 (a busy machine can make password hashing queue past the
    gateway's timeout); 2xx or a RuntimeError naming what failed."""
    for attempt in range(4):
        response = await client.request(method, path, **kwargs)
        if response.status_code not in (503, 504):
            break
        await asyncio.sleep(1 + attempt)
    if not response.is_success:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:200]}")
    return response


async def register(client: httpx.AsyncClient, username: str) -> None:
    try:
        await send(
            client,
            f"registering {username}",
            "POST",
            "/auth/register",
            json={"username": username, "password": PASSWORD},
        )
    except RuntimeError as error:
        if "already registered" not in str(error):  # a retry after a timed-out attempt that succeeded
            raise


async def log_in(client: httpx.AsyncClient, user: BenchUser) -> None:
    response = await send(
        client,
        f"logging in {user.username}",
        "POST",
        "/auth/login",
        data={"username": user.username, "password": PASSWORD},
    )
    user.token = response.json()["access_token"]
    user.user_id = token_subject(user.token)


async def top_up(client: httpx.AsyncClient, admin: BenchUser, user: BenchUser, run_id: str) -> None:
    await send(
        client,
        f"topping up user {user.user_id}",
        "POST",
        "/wallet/credits",
        json={"user_id": user.user_id, "amount": TOPUP_AMOUNT, "type": "TOPUP", "description": "bench"},
        headers={"Authorization": f"Bearer {admin.token}", "Idempotency-Key": f"bench-topup-{run_id}-{user.user_id}"},
    )


def make_admin(redis_url: str, user_id: int) -> None:
    from redis import Redis

    from services.auth.users import USER_KEY_PREFIX

    with Redis.from_url(redis_url) as redis:
        redis.hset(f"{USER_KEY_PREFIX}{user_id}", "role", "admin")


async def populate(
    url: str, count: int, run_id: str, redis_url: str | None
) -> tuple[BenchUser, list[BenchUser], list[str]]:
    """The admin and `count` users, all logged in; the users topped up when there is an admin."""
    notes = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        admin = BenchUser(f"bench{run_id}adm")
        users = [BenchUser(f"bench{run_id}u{i}") for i in range(count)]
        started = time.perf_counter()
        await bounded(SETUP_CONCURRENCY, lambda u: register(client, u.username), [admin, *users])
        await bounded(SETUP_CONCURRENCY, lambda u: log_in(client, u), [admin, *users])
        say(f"  registered and logged in {count + 1} users in {time.perf_counter() - started:.1f} s")
        if redis_url:
            make_admin(redis_url, admin.user_id)
            await log_in(client, admin)  # a token that carries the admin role
            await bounded(16, lambda user: top_up(client, admin, user, run_id), users)
            say(f"  topped up every user with {TOPUP_AMOUNT} (admin user {admin.user_id}, role set in Redis)")
        else:
            notes.append("No Redis to make an admin (BENCH_URL without BENCH_REDIS_URL): users were not topped up.")
    return admin, users, notes


async def register_more(url: str, count: int, run_id: str) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await bounded(SETUP_CONCURRENCY, lambda i: register(client, f"bench{run_id}g{i}"), range(count))
    return time.perf_counter() - started


# ---------------------------------------------------------------- ledger invariant


class ListingError(Exception):
    pass


async def list_balances(client: httpx.AsyncClient) -> dict[int, int | None]:
    """Every user's balance in paise (None: no wallet yet), from GET /users paged by after_id."""
    balances: dict[int, int | None] = {}
    after_id = 0
    while True:
        response = await client.get("/users", params={"after_id": after_id, "limit": 1000})
        if response.status_code != 200:
            raise ListingError(f"GET /users: {response.status_code} {response.text[:200]}")
        page = response.json()
        if not page:
            return balances
        for user in page:
            balances[user["id"]] = None if user["balance"] is None else round(user["balance"] * 100)
        after_id = page[-1]["id"]


async def list_entries(client: httpx.AsyncClient) -> list[dict]:
    """Every ledger entry, from GET /transactions paged by the X-Next-Cursor header."""
    entries: list[dict] = []
    cursor = None
    while True:
        response = await client.get("/transactions", params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        if response.status_code != 200:
            raise ListingError(f"GET /transactions: {response.status_code} {response.text[:200]}")
        entries.extend(response.json())
        cursor = response.headers.get("x-next-cursor")
        if not cursor:
            return entries


async def check_ledger(url: str, admin_token: str | None, attempts: int = 5) -> dict:
    """For every user: balance == credits (REGISTER, TOPUP, REFUND) - debits (SPEND, BUY), in paise,
    from the debug listings GET /users and GET /transactions. The two listings are not one
    snapshot, so the balances are read before and after the ledger; if they differ, money was still
    moving (requests the server had in flight when the load stopped) and the check is repeated."""
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as client:
        try:
            reads = 0
            while True:
                reads += 1
                balances = await list_balances(client)
                ledger = await list_entries(client)
                if await list_balances(client) == balances:
                    break
                if reads == attempts:
                    return {
                        "passed": False,
                        "attempts": attempts,
                        "problems": [f"balances still changing after {attempts} attempts; no quiet moment to check"],
                    }
                await asyncio.sleep(2)
        except ListingError as error:
            return {"passed": False, "problems": [str(error)]}
    result = ledger_problems(balances, ledger)
    result.update(attempts=reads, seconds=round(time.perf_counter() - started, 2))
    return result


def ledger_problems(balances: dict[int, int | None], ledger: list[dict]) -> dict:
    """What breaks the invariant: a balance that is not its ledger's sum or last balance_after, an
    entry id seen twice, an unknown entry type, a user without wallet, entries of an unlisted user."""
    problems: list[str] = []
    sums: dict[int, int] = {}
    last_after: dict[int, int] = {}
    entry_ids: set[int] = set()
    for entry in ledger:  # by user, then oldest first
        user_id, paise = entry["user_id"], round(entry["amount"] * 100)
        if entry["id"] in entry_ids:
            problems.append(f"ledger entry id {entry['id']} appears twice")
        entry_ids.add(entry["id"])
        if entry["type"] in CREDITS:
            sums[user_id] = sums.get(user_id, 0) + paise
        elif entry["type"] in DEBITS:
            sums[user_id] = sums.get(user_id, 0) - paise
        else:
            problems.append(f"entry {entry['id']} of user {user_id} has unknown type {entry['type']!r}")
        last_after[user_id] = round(entry["balance_after"] * 100)
    for user_id, balance in balances.items():
        if balance is None:
            problems.append(f"user {user_id} has no wallet")
        elif balance != sums.get(user_id, 0):
            problems.append(
                f"user {user_id}: balance {balance / 100:.2f} != ledger sum {sums.get(user_id, 0) / 100:.2f}"
            )
        elif user_id in last_after and last_after[user_id] != balance:
            problems.append(
                f"user {user_id}: balance {balance / 100:.2f} != last balance_after {last_after[user_id] / 100:.2f}"
            )
    for user_id in sums.keys() - balances.keys():
        problems.append(f"ledger entries for user {user_id}, who is not listed")
    return {
        "passed": not problems,
        "users": len(balances),
        "entries": len(ledger),
        "total_balance": sum(b for b in balances.values() if b) / 100,
        "problems": problems[:20],
        "problem_count": len(problems),
    }


# ---------------------------------------------------------------- load runs


def stack_pids(stack: Stack) -> dict[str, list[int]]:
    """The pids of each service (all its replicas: `wallet`, `wallet-2`, ...) and of redis-server
    (every node of a cluster)."""
    pids: dict[str, list[int]] = {name: [] for name in PROCESSES}
    for name, process in stack.processes.items():
        pids[name.split("-")[0]].append(process.pid)
    nodes = getattr(stack.redis, "nodes", None) or [stack.redis]
    pids["redis"] = [node.process.pid for node in nodes]
    return pids


def run_load(operation: str, url: str, settings: Settings, pids: dict, users: list[BenchUser]) -> dict:
    """One timed locust run in a child process (see bench/loadgen.py)."""
    config = {
        "operation": operation,
        "url": url,
        "concurrency": settings.concurrency,
        "seconds": settings.seconds,
        "warmup_seconds": settings.warmup,
        "pids": pids,
        "tokens": [u.token for u in users],
        "credentials": [[u.username, PASSWORD] for u in users],
    }
    if pids:
        wait_quiet(pids, timeout=60)  # nothing left over from the previous run in this one's CPU window
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        config_path, result_path = Path(tmp) / "config.json", Path(tmp) / "result.json"
        config_path.write_text(json.dumps(config))
        done = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", str(config_path), str(result_path)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=settings.seconds + settings.warmup + 180,
        )
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"load run {operation} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result = json.loads(result_path.read_text())
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line or "CPU usage" in line]
    if warnings:
        result["loadgen_warnings"] = warnings[:5]
    return result


def derive(result: dict, calibration_us: float | None) -> dict:
    """CPU per request (µs) by process and in total, and the multiple of the calibration's."""
    requests = result["requests"]
    cpu = result.get("cpu_seconds")
    if cpu and requests:
        result["cpu_us_per_request"] = {name: seconds / requests * 1e6 for name, seconds in cpu.items()}
        result["cpu_us_per_request_total"] = sum(cpu.values()) / requests * 1e6
        if calibration_us:
            result["cpu_vs_calibration"] = result["cpu_us_per_request_total"] / calibration_us
    result["unexpected_errors"] = {
        outcome: count
        for outcome, count in result["outcomes"].items()
        if not outcome.startswith("2") and outcome not in EXPECTED_OUTCOMES
    }
    seconds = result["seconds"] or 1.0
    result["loadgen_cpu_percent"] = 100 * result["loadgen_cpu_seconds"] / seconds
    # Everything else that ran on the machine meanwhile (other users' work; the system): a busy
    # neighbour makes latencies worse, while CPU per request stays mostly comparable.
    other = result["machine_busy_cpu_seconds"] - result["loadgen_cpu_seconds"] - sum((cpu or {}).values())
    result["other_cpu_percent"] = max(0.0, 100 * other / seconds)
    return result


def calibration_command(stack: Stack | None, port: int) -> tuple[list[str], str]:
    """The gateway's own uvicorn command line with the calibration app and port swapped in, so the
    two run with the same server flags; the stack's default flags when there is no gateway to copy."""
    default = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.calibration_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "10",
    ]
    if stack is None:
        return default, "the stack's default uvicorn flags (no gateway process to copy them from)"
    import psutil

    command = psutil.Process(stack.processes["gateway"].pid).cmdline()
    if SERVICES["gateway"] not in command or "--port" not in command:
        return default, "the stack's default uvicorn flags (the gateway's command line was not a plain uvicorn one)"
    command = ["bench.calibration_app:app" if part == SERVICES["gateway"] else part for part in command]
    command[command.index("--port") + 1] = str(port)
    return command, "the gateway's command line"


def run_calibration(stack: Stack | None, settings: Settings, log_dir: Path) -> dict:
    port = free_port()
    command, source = calibration_command(stack, port)
    env = stack.service_env() if stack else {**os.environ, "PYTHONPATH": str(ROOT)}
    log_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=open(log_dir / "calibration.log", "ab"), stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/", timeout=0.5).status_code == 200, timeout=30, what="the calibration app")
        result = run_load("calibration", url, settings, {"calibration": process.pid}, [])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    result["command"] = [Path(command[0]).name, *command[1:]]
    result["command_source"] = source
    return derive(result, None)


# ---------------------------------------------------------------- report


def fmt(value, spec: str = ".1f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(  # noqa: E731
        str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths))
    )
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def errors_text(result: dict) -> str:
    errors = {k: v for k, v in result["outcomes"].items() if not k.startswith("2")}
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"


def report(results: dict) -> str:
    runs = ([results["calibration"]] if results.get("calibration") else []) + results["operations"]
    label = lambda run: CALIBRATION if run["operation"] == "calibration" else OPERATIONS[run["operation"]]  # noqa: E731
    settings = results["settings"]
    out = [
        f"Bench {results['started_at']}  users={settings['users']} concurrency={settings['concurrency']} "
        f"seconds={settings['seconds']:g} (+{settings['warmup']:g} warm-up) target={results['target']}",
        "",
        table(
            ["operation", "req/s", "p50 ms", "p95 ms", "p99 ms", "CPU µs/req", "x calib", "errors (non-2xx)"],
            [
                [
                    label(run),
                    fmt(run["requests_per_second"], ".0f"),
                    fmt(run["latency_ms"]["p50"]),
                    fmt(run["latency_ms"]["p95"]),
                    fmt(run["latency_ms"]["p99"]),
                    fmt(run.get("cpu_us_per_request_total"), ".0f"),
                    "1.00" if run["operation"] == "calibration" else fmt(run.get("cpu_vs_calibration"), ".2f"),
                    errors_text(run),
                ]
                for run in runs
            ],
        ),
    ]
    measured = [run for run in results["operations"] if run.get("cpu_us_per_request")]
    if measured:
        out += [
            "",
            "Server CPU per request by process (µs, user+system); CPU of the load generator and of everything",
            f"else on the machine during the run (% of one core; the machine has {results['machine']['cpus']} cores):",
            table(
                ["operation", *PROCESSES, "total", "locust", "other"],
                [
                    [
                        label(run),
                        *(fmt(run["cpu_us_per_request"].get(p), ".0f") for p in PROCESSES),
                        fmt(run["cpu_us_per_request_total"], ".0f"),
                        fmt(run["loadgen_cpu_percent"], ".0f") + "%",
                        fmt(run["other_cpu_percent"], ".0f") + "%",
                    ]
                    for run in measured
                ]
                + (
                    [
                        [
                            CALIBRATION,
                            "",
                            "",
                            "",
                            "",
                            "",
                            fmt(results["calibration"]["cpu_us_per_request_total"], ".0f"),
                            fmt(results["calibration"]["loadgen_cpu_percent"], ".0f") + "%",
                            fmt(results["calibration"]["other_cpu_percent"], ".0f") + "%",
                        ]
                    ]
                    if results.get("calibration")
                    else []
                ),
            ),
            "",
            "Peak RSS during each run (MiB, sampled every 0.25 s):",
            table(
                ["operation", *PROCESSES],
                [[label(run), *(mib(run["peak_rss_bytes"].get(p)) for p in PROCESSES)] for run in measured]
                + (
                    [[CALIBRATION, mib(results["calibration"]["peak_rss_bytes"]["calibration"]), "", "", "", ""]]
                    if results.get("calibration")
                    else []
                ),
            ),
        ]
    else:
        out += ["", "Server CPU and memory: not measured (BENCH_URL: the server processes are not this run's)."]
    growth = results.get("memory_growth")
    if growth:
        out += [
            "",
            f"Memory growth (RSS, MiB): after the runs with {growth['users_before']} users, then after registering "
            f"{growth['registered']} more ({settings['growth']} x {settings['growth_base']}, concurrency {SETUP_CONCURRENCY}, "
            f"{growth['seconds']:.0f} s):",
            table(
                [
                    "process",
                    f"{growth['users_before']} users",
                    f"{growth['users_after']} users",
                    "growth",
                    "KiB/user",
                    "peak (VmHWM)",
                ],
                [
                    [
                        p,
                        mib(growth["rss_before"][p]),
                        mib(growth["rss_after"][p]),
                        f"{(growth['rss_after'][p] - growth['rss_before'][p]) / 2**20:+.1f}",
                        f"{(growth['rss_after'][p] - growth['rss_before'][p]) / 1024 / growth['registered']:+.2f}",
                        mib(growth["high_water"][p]),
                    ]
                    for p in PROCESSES
                ],
            ),
        ]
    out += ["", "Ledger invariant (balance == REGISTER+TOPUP+REFUND - SPEND-BUY, every user) after each run:"]
    for check in results["ledger_checks"]:
        verdict = (
            "pass"
            if check["passed"]
            else f"FAIL ({check.get('problem_count', 1)} problems: {'; '.join(check['problems'][:3])})"
        )
        detail = f"{check.get('users', '?')} users, {check.get('entries', '?')} entries" if "users" in check else ""
        if check.get("attempts", 1) > 1:
            detail += f", balances settled after {check['attempts']} reads"
        if (check.get("busy_after_load_seconds") or 0) >= 0.5:
            detail += f"; stack busy {check['busy_after_load_seconds']:.1f} s after the load stopped"
        out.append(f"  after {check['after']:<22} {verdict}  {detail}")
    if results.get("targets"):
        out += ["", "Issue 7 targets:"]
        out += [f"  {t['target']:<58} {t['figure']:<18} {'met' if t['met'] else 'MISSED'}" for t in results["targets"]]
    if results.get("notes"):
        out += ["", *(f"Note: {note}" for note in results["notes"])]
    return "\n".join(out)


def judge_targets(results: dict) -> list[dict]:
    targets = []
    for run in results["operations"]:
        name = run["operation"]
        if name in CPU_TARGETS and run.get("cpu_vs_calibration") is not None:
            ratio = run["cpu_vs_calibration"]
            targets.append(
                {
                    "target": f"{OPERATIONS[name]} CPU/request <= {CPU_TARGETS[name]:g}x calibration",
                    "figure": f"{ratio:.2f}x",
                    "met": ratio <= CPU_TARGETS[name],
                }
            )
        if name in P99_TARGETS_MS and run["latency_ms"]["p99"] is not None:
            p99 = run["latency_ms"]["p99"]
            targets.append(
                {
                    "target": f"{OPERATIONS[name]} p99 < {P99_TARGETS_MS[name]:g} ms at {run['concurrency']} clients",
                    "figure": f"{p99:.1f} ms",
                    "met": p99 < P99_TARGETS_MS[name],
                }
            )
    unexpected = {
        run["operation"]: run["unexpected_errors"] for run in results["operations"] if run["unexpected_errors"]
    }
    targets.append(
        {
            "target": "no errors but insufficient funds",
            "figure": "; ".join(
                f"{op}: {', '.join(f'{k} x{v}' for k, v in errs.items())}" for op, errs in unexpected.items()
            )
            or "none",
            "met": not unexpected,
        }
    )
    return targets


# ---------------------------------------------------------------- main


def code_version() -> dict:
    """The commit measured and the files changed on top of it (the numbers are the working tree's)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "uncommitted": [line[3:] for line in git("status", "--porcelain").splitlines()],
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def bench(settings: Settings, work_dir: Path) -> tuple[dict, int]:
    run_id = uuid.uuid4().hex[:6]
    started_at = datetime.now(UTC)
    results: dict = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "settings": asdict(settings),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "code": code_version(),
        "operations": [],
        "ledger_checks": [],
        "notes": [],
    }
    stack = None
    try:
        if settings.url:
            url, redis_url, pids = settings.url.rstrip("/"), settings.redis_url, {}
            results["target"] = url
            results["notes"].append(
                "BENCH_URL: server CPU per request and memory are not measured (not our processes)."
            )
            say(f"Using the stack at {url} (BENCH_URL); server CPU and memory will not be measured.")
        else:
            say(f"Starting the stack on free ports in {work_dir} ...")
            os.environ.pop("SERVICE_API_KEY", None)  # the stack makes its own in the data dir
            stack = Stack.on_free_ports(work_dir / "stack").start()
            url, redis_url = stack.url("gateway"), stack.redis.url
            pids = stack_pids(stack)
            results["target"] = f"own stack at {url}"
            results["stack"] = {"pids": pids}

        if settings.calibration:
            say(
                f"Calibration: {settings.concurrency} clients for {settings.seconds:g} s against bench/calibration_app.py ..."
            )
            results["calibration"] = run_calibration(stack, settings, work_dir / "logs")
            say(
                f"  {results['calibration']['requests_per_second']:.0f} req/s, "
                f"{fmt(results['calibration']['cpu_us_per_request_total'], '.0f')} µs CPU/request"
            )
        calibration_us = (results.get("calibration") or {}).get("cpu_us_per_request_total")

        say(f"Creating {settings.users} users (+1 admin) ...")
        admin, users, notes = asyncio.run(populate(url, settings.users, run_id, redis_url))
        results["notes"] += notes
        admin_token = admin.token

        for operation in settings.operations:
            say(f"{OPERATIONS[operation]}: {settings.concurrency} clients for {settings.seconds:g} s ...")
            result = derive(run_load(operation, url, settings, pids, users), calibration_us)
            say(
                f"  {result['requests_per_second']:.0f} req/s, p99 {fmt(result['latency_ms']['p99'])} ms, "
                f"errors: {errors_text(result)}"
            )
            if pids:  # requests still in flight in the stack finish first
                result["busy_after_load_seconds"] = round(wait_quiet(pids, timeout=60), 1)
            check = asyncio.run(check_ledger(url, admin_token))
            check["after"] = operation
            check["busy_after_load_seconds"] = result.get("busy_after_load_seconds")
            result["ledger_invariant"] = "pass" if check["passed"] else "fail"
            results["operations"].append(result)
            results["ledger_checks"].append(check)
            say(f"  ledger invariant: {'pass' if check['passed'] else 'FAIL'}")

        extra = settings.growth * settings.growth_base
        if extra and pids:
            say(
                f"Memory growth: registering {extra} more users ({settings.growth} x {settings.growth_base}) "
                f"at concurrency {SETUP_CONCURRENCY} ..."
            )
            wait_quiet(pids, timeout=60)  # e.g. password hashes auth still owes to timed-out logins
            rss_before = rss_now(pids)
            seconds = asyncio.run(register_more(url, extra, run_id))
            time.sleep(1.0)  # the auth outbox and the allocators settle
            results["memory_growth"] = {
                "users_before": settings.users + 1,
                "users_after": settings.users + 1 + extra,
                "registered": extra,
                "seconds": seconds,
                "rss_before": rss_before,
                "rss_after": rss_now(pids),
                "high_water": rss_high_water(pids),
            }
            check = asyncio.run(check_ledger(url, admin_token))
            check["after"] = f"growth (+{extra} users)"
            results["ledger_checks"].append(check)
    finally:
        if stack:
            say("Stopping the stack ...")
            stack.stop()

    results["targets"] = judge_targets(results) if not settings.smoke else []
    invariant_ok = all(check["passed"] for check in results["ledger_checks"])
    unexpected = any(run["unexpected_errors"] or not run["requests"] for run in results["operations"])
    if settings.smoke:
        status = 0 if invariant_ok and not unexpected else 1
    else:
        status = 0 if invariant_ok else 1  # errors are measurements; money created or lost is a failure
    results["exit_status"] = status
    return results, status


def main(argv: list[str] | None = None) -> int:
    settings = settings_from(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    work_dir = Path(tempfile.mkdtemp(prefix="wallet-bench-"))
    try:
        results, status = bench(settings, work_dir)
    except KeyboardInterrupt:
        say("Interrupted.")
        shutil.rmtree(work_dir, ignore_errors=True)
        return 130
    except Exception:
        say(f"The bench failed; the stack's logs are kept in {work_dir}/stack/logs")
        raise
    shutil.rmtree(work_dir, ignore_errors=True)
    text = report(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(results["started_at"]).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}{'-smoke' if settings.smoke else ''}.json"
    results["table"] = text
    path.write_text(json.dumps(results, indent=2, default=str))
    say("\n" + text + f"\n\nWrote {path.relative_to(ROOT)}")
    if settings.smoke:
        say(
            "Smoke: "
            + ("OK" if status == 0 else "FAILED (unexpected errors, no requests served, or a broken ledger invariant)")
        )
    return status
