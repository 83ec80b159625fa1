"""Auth service: users, password hashes, token signing and the public keys (JWKS)."""
