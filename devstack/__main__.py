"""`make run`: the whole stack on the default ports (or PORT settings), until Ctrl-C."""

import os
import signal
import time
from pathlib import Path

from devstack.stack import DEFAULT_PORTS, Stack


def main() -> None:
    ports = {name: int(os.environ.get(f"{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()}
    data_dir = Path(os.environ.get("DATA_DIR", ".data")).resolve()
    stack = Stack(data_dir=data_dir, ports=ports, redis_url=os.environ.get("REDIS_URL") or None)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        stack.start()
        redis = stack.redis_url or f"{stack.redis.url} (redis-server, files in {stack.redis.data_dir})"
        print(
            f"\nWallet & Shop is running.\n"
            f"  API (gateway):  {stack.url('gateway')}        docs: {stack.url('gateway')}/docs\n"
            f"  auth service:   {stack.url('auth')}/docs\n"
            f"  wallet service: {stack.url('wallet')}/docs\n"
            f"  catalog service:{stack.url('catalog')}/docs\n"
            f"  redis:          {redis}\n"
            f"  logs:           {data_dir / 'logs'}/*.log\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )
        while all(process.poll() is None for process in stack.processes.values()):
            time.sleep(0.5)
        print("A service stopped; see its log. Stopping the others.")
    except KeyboardInterrupt:
        print("\nStopping...")
    finally:
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    main()
