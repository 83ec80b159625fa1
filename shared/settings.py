"""The settings every service reads from its environment.

Each service subclasses `ServiceSettings`; a secret has no default, so a service started without
it stops at once and names the variable (pydantic-settings reports the missing field).
"""

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder"}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis the service keeps its data in.")
    redis_cluster: bool = Field(False, description="REDIS_URL names a node of a Redis Cluster.")
    redis_timeout_seconds: float = Field(2.0, gt=0, description="Timeout of every Redis command.")
    service_api_key: SecretStr = Field(
        description="Shared key that authenticates one service to another's /internal endpoints."
    )
    auth_url: str = Field("http://127.0.0.1:8001", description="Auth replicas' base URLs, comma-separated (JWKS).")
    token_issuer: str = Field("wallet-auth", description="`iss` every token must carry.")
    token_audience: str = Field("wallet-api", description="`aud` every token must carry.")
    downstream_timeout_seconds: float = Field(3.0, gt=0, description="Timeout of every outbound HTTP call.")
    max_body_bytes: int = Field(64 * 1024, gt=0, description="Larger request bodies get 413.")
    log_level: str = Field("INFO", description="Python log level name.")
    debug_listings: str = Field(
        "open", pattern="^(open|admin|off)$", description="GET /users and /transactions: open, admin-only or off."
    )

    cors_origins: str = Field("", description="Comma-separated browser origins allowed to call the API (none by default).")

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @field_validator("service_api_key")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS or len(value.get_secret_value()) < 16:
            raise ValueError("SERVICE_API_KEY must be a random string of at least 16 characters")
        return value
