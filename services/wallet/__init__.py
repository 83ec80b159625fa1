"""Wallet service: balances and the ledger in Redis; every money movement is one Lua script."""
