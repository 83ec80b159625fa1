"""The request id every log line carries and every call to another service passes on."""

import contextvars
import itertools
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Ids minted here need to be unique, not secret: a random prefix per process and a counter cost
# far less than a uuid4 (a system call) per request.
_PROCESS_PREFIX = uuid.uuid4().hex[:16]
_sequence = itertools.count(1)


def new_request_id() -> str:
    return f"{_PROCESS_PREFIX}{next(_sequence):016x}"  # 32 hex digits, like a uuid4.hex
