"""`make bench`: measured speed of the stack through the gateway (see bench/run.py)."""
