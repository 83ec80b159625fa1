"""Password hashing: Argon2id by default, older bcrypt hashes verified and upgraded at login.

Hashing is slow on purpose, so it runs in worker threads, a bounded number at once, and never
blocks the event loop that serves everything else. When more logins wait than can be served
within a few seconds, the rest are turned away at once (503, retry) instead of timing out
while the CPU keeps hashing for clients that have gone.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from passlib.context import CryptContext

# OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane. Hashes with other
# parameters (or bcrypt) still verify and are rehashed with these at the next login.
password_context = CryptContext(
    schemes=["argon2", "bcrypt"],
    deprecated=["bcrypt"],
    argon2__type="ID",
    argon2__memory_cost=19 * 1024,
    argon2__time_cost=2,
    argon2__parallelism=1,
)


class HasherBusy(Exception):
    """Too many password checks are already waiting."""


class PasswordHasher:
    def __init__(self, concurrency: int, max_waiting: int) -> None:
        # Threads of its own: Argon2 takes 19 MiB per hash, and each thread that ever hashes keeps
        # a malloc arena of that size, so a shared pool of 40 threads grew auth to 400 MiB.
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="password-hash")
        self._max_waiting = max_waiting
        self._waiting = 0
        self._dummy_hash: str | None = None

    async def _run(self, function, *args):
        if self._waiting >= self._max_waiting:
            raise HasherBusy
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, function, *args)
        finally:
            self._waiting -= 1

    async def hash(self, password: str) -> str:
        return await self._run(password_context.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(matches, new hash to store or None). An unknown user is checked against a dummy hash,
        so the answer takes as long as for a known user with a wrong password."""
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("dummy password for unknown users")
            await self._run(password_context.verify, password, self._dummy_hash)
            return False, None
        return await self._run(password_context.verify_and_update, password, stored_hash)
