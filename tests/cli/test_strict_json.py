"""Every `--json` output is strict JSON: no NaN or Infinity, which strict parsers reject with the whole document."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from beacon.cli.render import emit, strict, to_json


def _refuse(name):
    raise AssertionError(f"{name} in the output")


def test_non_finite_numbers_become_null_and_numpy_scalars_plain_numbers(capsys):
    data = {"nan": math.nan, "inf": np.float64(np.inf), "n": np.int64(3), "ok": np.float32(0.5),
            "flag": np.bool_(True), "nested": [{"x": -math.inf}, (1, math.nan)], 4: "int key"}
    emit(data, True, render=lambda d: None)
    out = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert out == {"nan": None, "inf": None, "n": 3, "ok": 0.5, "flag": True, "nested": [{"x": None}, [1, None]],
                   "4": "int key"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@given(json_values)
def test_any_nested_value_renders_as_strict_json(value):
    text = to_json(value)
    back = json.loads(text, parse_constant=_refuse)
    assert back == json.loads(json.dumps(strict(value)))
