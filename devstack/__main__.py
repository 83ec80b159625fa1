"""`make run`: the whole stack on the default ports (or PORT settings), until Ctrl-C."""

import os
import signal
import time
from pathlib import Path

from devstack.stack import DEFAULT_PORTS, Stack

MAX_RESTARTS_PER_MINUTE = 3


def keep_running(stack: Stack) -> None:
    """Restart a process that dies (a crashed service, a killed redis-server), as a supervisor
    would; give up when one keeps dying."""
    restarts: dict[str, list[float]] = {}
    while True:
        time.sleep(0.5)
        dead = [name for name, process in stack.processes.items() if process.poll() is not None]
        if stack.redis and stack.redis.process and stack.redis.process.poll() is not None:
            dead.insert(0, "redis")
        for name in dead:
            recent = [t for t in restarts.get(name, []) if time.monotonic() - t < 60] + [time.monotonic()]
            restarts[name] = recent
            if len(recent) > MAX_RESTARTS_PER_MINUTE:
                print(f"{name} keeps stopping; see {stack.data_dir / 'logs'}. Stopping everything.", flush=True)
                return
            print(f"{name} stopped; restarting it.", flush=True)
            try:
                stack.redis.start() if name == "redis" else stack.start_service(name)
            except RuntimeError as failed:  # counted as another death on the next round
                print(f"{name} did not restart: {failed}", flush=True)


def main() -> None:
    ports = {name: int(os.environ.get(f"{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()}
    data_dir = Path(os.environ.get("DATA_DIR", ".data")).resolve()
    stack = Stack(data_dir=data_dir, ports=ports, redis_url=os.environ.get("REDIS_URL") or None)
    # Both stop the stack, also when started in the background (where SIGINT is ignored by default).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stack.start()
        redis = stack.redis_url or f"{stack.redis.url} (redis-server, files in {stack.redis.data_dir})"
        print(
            f"\nWallet & Shop is running.\n"
            f"  API (gateway):  {stack.url('gateway')}        docs: {stack.url('gateway')}/docs\n"
            f"  auth service:   {stack.url('auth')}/docs\n"
            f"  wallet service: {stack.url('wallet')}/docs\n"
            f"  catalog service: {stack.url('catalog')}/docs\n"
            f"  redis:          {redis}\n"
            f"  logs:           {data_dir / 'logs'}/*.log\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )
        keep_running(stack)
    except KeyboardInterrupt:
        print("\nStopping...")
    finally:
        # A second signal (make passes SIGTERM on, or Ctrl-C twice) must not cut the stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    main()
