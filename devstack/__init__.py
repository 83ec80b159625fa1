"""Starts the whole stack on one machine: Redis, the three services and the gateway, as processes.

`make run` uses it with the default ports; the integration tests and the benchmark use it on free
ports with a temporary data directory.
"""
