"""The request id every log line carries and every call to another service passes on."""

import contextvars

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
