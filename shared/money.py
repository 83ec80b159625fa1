"""Money at the API edge: exact decimal rupees in, integer paise inside, JSON numbers out.

Amounts are read from the JSON text as `Decimal` (see `shared.jsonbody`), never through a
binary float, so `20.5`, `20.50` and `"20.50"` are the same 2050 paise.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

PAISE_PER_RUPEE = 100
ONE_PAISA = Decimal("0.01")
MAX_SPEND = Decimal("100000.00")  # per spend, purchase, top-up or refund
# The JSON number grammar, for amounts sent as strings ("20.50"); ASCII digits only.
_NUMBER_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


class NonFiniteNumber(str):
    """What `NaN`, `Infinity` or `-Infinity` in a JSON body parse to, so validation can name them."""


def parse_amount(raw: Any, *, field: str = "amount", maximum: Decimal = MAX_SPEND) -> Decimal:
    """Return `raw` as a positive Decimal with at most two decimals, or raise ValueError naming the rule."""
    if isinstance(raw, NonFiniteNumber):
        raise ValueError(f"{field} must be a finite number, not {raw}")
    if isinstance(raw, bool) or raw is None or isinstance(raw, (list, dict, float)):
        raise ValueError(f"{field} must be a decimal number such as 20.50")
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, str):
        if not _NUMBER_TEXT.fullmatch(raw):
            raise ValueError(f"{field} must be a decimal number such as 20.50")
        try:
            value = Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise ValueError(f"{field} must be a decimal number such as 20.50") from None
    else:
        raise ValueError(f"{field} must be a decimal number such as 20.50")
    if not value.is_finite():
        raise ValueError(f"{field} must be a finite number")
    if value <= 0:
        raise ValueError(f"{field} must be greater than 0")
    if value > maximum:
        raise ValueError(f"{field} must be at most {maximum}")
    if value != value.quantize(ONE_PAISA):
        raise ValueError(f"{field} must have at most two decimal places")
    return value.quantize(ONE_PAISA)


def to_paise(amount: Decimal) -> int:
    return int(amount * PAISE_PER_RUPEE)


def to_rupees(paise: int) -> float:
    """The JSON number for an integer of paise: 2950 -> 29.5, 0 -> 0.0 (correctly rounded, so exact in print)."""
    return paise / PAISE_PER_RUPEE


Amount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": f"Rupees, more than 0 and at most {MAX_SPEND}, at most two decimals.",
            "examples": [20.5],
        }
    ),
]
