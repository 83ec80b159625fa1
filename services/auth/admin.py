"""Operator commands: `python -m services.auth.admin promote <username>` gives a user the admin role
(top-ups, refunds, restricted debug listings). It talks to the auth service's Redis (REDIS_URL),
so only someone who operates the stack can run it; the user logs in again to get an admin token."""

import argparse
import asyncio
import os
import sys

from redis.asyncio import Redis

from services.auth.users import UserStore
from shared.tokens import ADMIN_ROLE


async def set_role(redis_url: str, username: str, role: str) -> int:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        users = UserStore(redis)
        user = await users.by_username(username)
        if user is None:
            print(f"no user named {username!r}", file=sys.stderr)
            return 1
        await users.set_role(user.id, role)
        print(f"user {user.id} ({user.username}) is now {role}; tokens issued from the next login carry it")
        return 0
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["promote", "demote"])
    parser.add_argument("username")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6399/0"))
    args = parser.parse_args()
    role = ADMIN_ROLE if args.command == "promote" else "user"
    sys.exit(asyncio.run(set_role(args.redis_url, args.username, role)))


if __name__ == "__main__":
    main()
