"""log.json_encoder_for writes the same text as json.JSONEncoder(ensure_ascii=False, ...).encode."""

from __future__ import annotations

import json

import pytest

from sesmail.log import json_encoder_for

VALUES = [
    {"Error": {"Code": "InvalidParameter", "Message": "Destination[0] is wrong", "Field": "Destination[0]"},
     "RequestId": "r"},
    {"Time": 1796071926.7081177, "Level": "INFO", "Message": "订单 \u2028 \"x\"\n", "Status": 400, "Millis": 1.85,
     "To": ["a***@example.com"], "Ok": True, "None": None, "Big": 2**70, "Empty": {}, "List": []},
    {"b": 1, "a": {"d": [1.5, -0.0, 1e300], "c": "\x00\x1f"}},
    "text", 5, 1.25, None, [], [1, "2", [3]],
]


@pytest.mark.parametrize("options", [
    {"separators": (",", ":"), "allow_nan": False},
    {"default": str},
    {"separators": (",", ":"), "sort_keys": True},
    {"separators": (",", ":")},
])
@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_same_text_as_json_encoder(options, value):
    assert json_encoder_for(**options)(value) == json.JSONEncoder(ensure_ascii=False, **options).encode(value)


def test_default_and_errors_behave_as_json_encoder():
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert json_encoder_for(default=str)({"x": Odd()}) == '{"x": "odd"}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_encoder_for()({"x": Odd()})
    with pytest.raises(ValueError, match="Out of range float"):
        json_encoder_for(allow_nan=False)({"x": float("nan")})
    assert json_encoder_for()({"x": float("inf")}) == '{"x": Infinity}'
