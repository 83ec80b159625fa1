"""The contract's error messages and the HTTP errors every service raises with them."""

from fastapi import HTTPException, status

NOT_AUTHENTICATED = "Not authenticated"
INVALID_CREDENTIALS = "Could not validate credentials"
INSUFFICIENT_FUNDS = "Insufficient funds in wallet."
IDEMPOTENCY_KEY_REUSED = "Idempotency-Key was already used with a different request."
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
RETRY_SOON = {"Retry-After": "1"}


def unauthorized(detail: str = INVALID_CREDENTIALS) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=BEARER_CHALLENGE)


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def unavailable(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"{what} is unavailable; retry shortly.",
        headers=RETRY_SOON,
    )


def timed_out(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_504_GATEWAY_TIMEOUT,
        detail=f"{what} did not answer in time; retry shortly (with the same Idempotency-Key, if you sent one).",
        headers=RETRY_SOON,
    )
