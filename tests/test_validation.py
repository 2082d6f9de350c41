"""The input contract's checks, and the regular expressions that say them to the API's document."""

import re
import sys
from typing import Annotated

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from ledger.errors import InvalidRequest
from ledger.validation import WHITESPACE, text, text_pattern, whole_number, whole_number_pattern


def takes(check, raw) -> bool:
    try:
        check(raw)
    except InvalidRequest:
        return False
    return True


def by_pydantic(pattern: str):
    """How pydantic's Rust engine reads the pattern (the API's schemas validate with it)."""
    schema = TypeAdapter(Annotated[str, Field(pattern=pattern)])
    return lambda raw: takes_schema(schema, raw)


def takes_schema(schema: TypeAdapter, raw: str) -> bool:
    try:
        schema.validate_python(raw)
    except ValidationError:
        return False
    return True


def test_whitespace_is_what_str_strip_removes():
    spaces = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert re.fullmatch(f"[{WHITESPACE}]*", spaces)
    assert not re.search(f"[{WHITESPACE}]", "".join(chr(c) for c in range(0x3001) if not chr(c).isspace()))


@pytest.mark.parametrize(("minimum", "maximum"), [(60, 86_400), (1, 500), (1, 8), (1, 200_000), (0, 7)])
def test_a_whole_number_pattern_matches_exactly_what_whole_number_takes(minimum, maximum):
    pattern = whole_number_pattern(minimum=minimum, maximum=maximum)
    python, rust = re.compile(pattern), by_pydantic(pattern)

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(
        st.from_regex(r"\A[ \t\u3000\x1c\ufeff]{0,2}[0-9]{0,11}[ \t\u3000\x1f\n]{0,2}\Z")
        | st.integers(0, 10**6).map(str)
        | st.text(max_size=12)
    )
    def agree(raw):
        taken = takes(lambda r: whole_number(r, "n", minimum=minimum, maximum=maximum), raw)
        assert bool(python.fullmatch(raw)) == taken == rust(raw), raw

    agree()


@pytest.mark.parametrize("strip", [True, False])
def test_a_text_pattern_matches_exactly_what_text_takes(strip):
    pattern = text_pattern(max_length=10, strip=strip)
    python, rust = re.compile(pattern), by_pydantic(pattern)

    @settings(max_examples=500, deadline=None, derandomize=True)
    @given(st.text(alphabet=st.sampled_from(" \t\x1c\x85\ufeff\x00a\u3000b\n"), max_size=14) | st.text(max_size=14))
    def agree(raw):
        taken = takes(lambda r: text(r, "t", max_length=10, strip=strip), raw)
        assert bool(python.fullmatch(raw)) == taken == rust(raw), raw

    agree()


def test_a_whole_number_may_be_a_json_number_without_a_fraction_but_not_text_true_or_a_fraction():
    assert whole_number(60.0, "n", minimum=60, maximum=86_400) == 60
    for refused in (60.5, True, float("nan"), float("inf"), 1e300, "60.0"):
        with pytest.raises(InvalidRequest):
            whole_number(refused, "n", minimum=60, maximum=86_400)
