from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from shared.jsonbody import loads_exact
from shared.money import Amount, parse_amount, to_paise, to_rupees


class Spend(BaseModel):
    amount: Amount


def amount_of(json_text: str) -> Decimal:
    return Spend.model_validate(loads_exact(json_text)).amount


@pytest.mark.parametrize("text", ['{"amount": 20.5}', '{"amount": 20.50}', '{"amount": "20.50"}', '{"amount": 2.05e1}'])
def test_the_same_amount_written_differently_is_the_same_number_of_paise(text):
    assert to_paise(amount_of(text)) == 2050


@pytest.mark.parametrize(
    "text, rule",
    [
        ('{"amount": 0}', "greater than 0"),
        ('{"amount": -1}', "greater than 0"),
        ('{"amount": -0.00}', "greater than 0"),
        ('{"amount": "\\u22125"}', "decimal number"),
        ('{"amount": 10.005}', "two decimal places"),
        ('{"amount": NaN}', "finite"),
        ('{"amount": Infinity}', "finite"),
        ('{"amount": -Infinity}', "finite"),
        ('{"amount": 1e309}', "at most"),
        ('{"amount": 100000.01}', "at most"),
        ('{"amount": true}', "decimal number"),
        ('{"amount": null}', "decimal number"),
        ('{"amount": [1]}', "decimal number"),
        ('{"amount": {"value": 1}}', "decimal number"),
        ('{"amount": "1,000"}', "decimal number"),
        ('{"amount": " 5"}', "decimal number"),
        ('{"amount": "\\u0665"}', "decimal number"),
    ],
)
def test_a_bad_amount_is_refused_naming_the_rule(text, rule):
    with pytest.raises(ValidationError) as refused:
        amount_of(text)
    error = refused.value.errors()[0]
    assert error["loc"] == ("amount",)
    assert rule in error["msg"]


def test_numbers_are_parsed_as_decimals_never_floats():
    parsed = loads_exact('{"a": 0.1, "b": 1e2, "c": 3}')
    assert parsed == {"a": Decimal("0.1"), "b": Decimal("1E+2"), "c": 3}
    assert not any(isinstance(value, float) for value in parsed.values())


def test_three_spends_of_ten_paise_from_a_hundred_leave_exactly_99_7():
    balance = 100_00
    for _ in range(3):
        balance -= to_paise(parse_amount(Decimal("0.1")))
    assert balance == 99_70 and to_rupees(balance) == 99.7
