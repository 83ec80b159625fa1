"""Ed25519 signing keys, their JWKS, and rotation.

Every `*.pem` in KEYS_DIR is published in the JWKS; the most recently created one signs. To
rotate: add a new key (`python -m services.auth.keys new`), restart auth; tokens signed with the
old key stay valid until they expire; then delete the old file.
"""

import argparse
import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_jwk(self) -> dict:
        jwk = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def key_id(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of the public key, so a kid always names exactly one key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()[:22]


def _load_pem(pem: bytes) -> SigningKey:
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("signing keys must be Ed25519")
    return SigningKey(kid=key_id(private_key.public_key()), private_key=private_key)


def new_key_file(keys_dir: Path) -> Path:
    keys_dir.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The name sorts by creation time, so the newest key is the last one.
    path = keys_dir / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


class KeyRing:
    """The keys auth verifies with (all) and signs with (the newest)."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("no signing key: set SIGNING_KEY_PEM or put an Ed25519 PEM in KEYS_DIR")
        self.keys = keys
        self.active = keys[-1]

    @classmethod
    def load(cls, *, keys_dir: Path, signing_key_pem: str | None, generate: bool) -> "KeyRing":
        if signing_key_pem:
            return cls([_load_pem(signing_key_pem.encode())])
        files = sorted(keys_dir.glob("*.pem")) if keys_dir.is_dir() else []
        if not files and generate:
            files = [new_key_file(keys_dir)]
        return cls([_load_pem(path.read_bytes()) for path in files])

    def jwks(self) -> dict:
        return {"keys": [key.public_jwk for key in self.keys]}

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self.active.private_key, algorithm=ALGORITHM, headers={"kid": self.active.kid})


def main() -> None:
    parser = argparse.ArgumentParser(description="Manage the auth service's signing keys.")
    parser.add_argument("command", choices=["new"], help="new: add a signing key (it signs after auth restarts)")
    parser.add_argument("--dir", type=Path, default=Path(".data/keys"), help="KEYS_DIR of the auth service")
    args = parser.parse_args()
    path = new_key_file(args.dir)
    print(f"new signing key {key_id(_load_pem(path.read_bytes()).private_key.public_key())} in {path}")


if __name__ == "__main__":
    main()
