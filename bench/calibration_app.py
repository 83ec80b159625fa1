"""The calibration endpoint: one FastAPI route returning a small JSON body, run by uvicorn with the
same flags as the stack's services. Each operation's server CPU per request is reported as a
multiple of this app's, so results compare across machines."""

from fastapi import FastAPI

app = FastAPI(title="bench calibration")


@app.get("/")
async def root() -> dict:
    return {"status": "ok", "service": "calibration", "balance": 100.0}
