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


def test_demo_json_keeps_stdout_for_the_json_alone(monkeypatch, capfd):
    # The stages print (progress, dbt and Airflow output, from this process and from programs it starts); with
    # --json all of it must reach standard error, so that `beacon demo --json > result.json` is one JSON document.
    import subprocess
    import sys

    import beacon.pipeline
    from beacon.cli import main

    class Result:
        def to_dict(self):
            return {"people": 10, "seconds": {"total": math.nan}}

    def fake_run_demo(people, seed, days, progress):
        progress("generate")
        print("a stage printing to stdout")
        subprocess.run([sys.executable, "-c", "print('a child process printing to stdout')"], check=True)
        progress("beacon_ingest")
        return Result()

    monkeypatch.setattr(beacon.pipeline, "run_demo", fake_run_demo)
    assert main(["demo", "--people", "10", "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out, parse_constant=_refuse) == {"people": 10, "seconds": {"total": None}}
    assert "a stage printing" in err and "a child process printing" in err and "beacon_ingest" in err
