"""Usernames as people see them: NFKC-normalised, unique without regard to case."""

import unicodedata

MIN_LENGTH, MAX_LENGTH = 3, 32
# Cc control, Cf format (zero-width and bidi marks), Z* separators, Cs/Co/Cn odd code points.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


def normalise_username(raw: str) -> str:
    """The username to store and show, or ValueError saying what is wrong with it."""
    name = unicodedata.normalize("NFKC", raw)
    if not MIN_LENGTH <= len(name) <= MAX_LENGTH:
        raise ValueError(f"username must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    if any(ch.isspace() or unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in name):
        raise ValueError("username must not contain spaces, control or invisible characters")
    return name


def username_key(name: str) -> str:
    """What two usernames must share to be the same account: `Alice`, `ALICE`, `ａｌｉｃｅ`."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
