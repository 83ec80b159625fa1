"""Password hashing: Argon2id by default, older bcrypt hashes verified and upgraded at login.

Hashing is slow on purpose, so it runs in worker threads, a bounded number at once, and never
blocks the event loop that serves everything else.
"""

import asyncio

from anyio import to_thread
from passlib.context import CryptContext

password_context = CryptContext(schemes=["argon2", "bcrypt"], deprecated=["bcrypt"], argon2__type="ID")


class PasswordHasher:
    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await to_thread.run_sync(password_context.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(matches, new hash to store or None). An unknown user is checked against a dummy hash,
        so the answer takes as long as for a known user with a wrong password."""
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("dummy password for unknown users")
            async with self._slots:
                await to_thread.run_sync(password_context.verify, password, self._dummy_hash)
            return False, None
        async with self._slots:
            return await to_thread.run_sync(password_context.verify_and_update, password, stored_hash)
