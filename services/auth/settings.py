from pathlib import Path

from pydantic import Field

from shared.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    wallet_url: str = Field("http://127.0.0.1:8002", description="Wallet replicas' base URLs, comma-separated.")
    keys_dir: Path = Field(Path(".data/keys"), description="Ed25519 signing keys (*.pem); the newest signs, all verify.")
    signing_key_pem: str | None = Field(None, description="One Ed25519 private key in PEM, instead of keys_dir.")
    generate_signing_key: bool = Field(True, description="Create a key in keys_dir on first start when there is none.")
    token_ttl_minutes: int = Field(30, gt=0, le=24 * 60, description="Lifetime of an access token.")
    login_max_failures: int = Field(5, gt=0, description="Failed logins per username before 429.")
    login_max_failures_per_address: int = Field(30, gt=0, description="Failed logins per client address before 429.")
    login_window_seconds: int = Field(300, gt=0, description="How long failed logins are counted.")
    hashing_concurrency: int = Field(
        1, gt=0, description="Password hashes computed at once; the rest wait, so a login burst leaves CPU for the rest."
    )
    # Below the gateway's 128 connections to auth, so an overload is answered here (503) rather
    # than queued in the gateway until its timeout (504); 64 x ~30 ms stays within that timeout.
    hashing_max_waiting: int = Field(64, gt=0, description="Password checks allowed to wait; more get 503 at once.")
    wallet_outbox_interval_seconds: float = Field(1.0, gt=0, description="How often unopened wallets are retried.")
