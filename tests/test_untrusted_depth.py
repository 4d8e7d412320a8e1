"""One depth rule for JSON from outside, the same on every Python (3.13's json reads nesting
that 3.10-3.12's refuses)."""

from __future__ import annotations

import pytest

from promptgrid import untrusted


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize(
    "data", [nested(100), nested(100).encode(), '{"a":' * 99 + "[]" + "}" * 99]
)
def test_nesting_up_to_the_limit_is_read(data: str | bytes) -> None:
    untrusted.loads(data)


@pytest.mark.parametrize(
    "data",
    [nested(101), nested(101).encode(), nested(2_000), '{"a":' * 100 + "[]" + "}" * 100,
     '{"x": "' + "[" * 500 + '", "y": ' + nested(101) + "}"],
)  # fmt: skip
def test_deeper_nesting_is_refused(data: str | bytes) -> None:
    with pytest.raises(untrusted.TooDeep, match="more than 100 levels"):
        untrusted.loads(data)


def test_many_brackets_in_strings_or_side_by_side_are_not_depth() -> None:
    wide = "[" + ",".join(["[]"] * 5_000) + "]"
    assert len(untrusted.loads(wide)) == 5_000
    assert untrusted.loads('"' + "[" * 5_000 + '"') == "[" * 5_000


def test_options_pass_through_and_invalid_json_is_a_value_error() -> None:
    assert untrusted.loads("1.5", parse_float=str) == "1.5"
    with pytest.raises(ValueError):
        untrusted.loads("[1,")
