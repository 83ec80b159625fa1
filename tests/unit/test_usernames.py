import pytest

from services.auth.usernames import normalise_username, username_key


def test_case_and_width_variants_are_the_same_account():
    assert username_key("Alice") == username_key("ALICE") == username_key("ａｌｉｃｅ") == "alice"


def test_the_stored_username_is_nfkc_normalised_with_its_case_kept():
    assert normalise_username("Ａｌｉｃｅ") == "Alice"


@pytest.mark.parametrize(
    "raw, rule",
    [
        ("ab", "3 to 32"),
        ("a" * 33, "3 to 32"),
        ("bob smith", "spaces"),
        ("bob\u200bsmith", "invisible"),
        ("bob\x00x", "control"),
        ("bob\tx", "spaces"),
        ("\u202ebob", "invisible"),
    ],
)
def test_a_bad_username_is_refused_naming_the_rule(raw, rule):
    with pytest.raises(ValueError, match=rule):
        normalise_username(raw)
