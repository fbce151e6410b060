"""The `beacon` console command: JSON output for scripts, clear errors for people."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BEACON = str(Path(sys.executable).with_name("beacon"))


def test_generate_prints_json_summary(tmp_path):
    out = subprocess.run([BEACON, "generate", "--people", "300", "--out", str(tmp_path), "--seed", "5", "--json"],
                         capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    assert d["people_total"] == 300 and d["rows"]["crm_contacts"] > 0
    assert Path(d["landing"]).is_dir() and Path(d["truth"]).is_dir()


def test_audiences_list_json(manifest):
    out = subprocess.run([BEACON, "audiences", "list", "--json"], capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    assert any(r["name"] == "cart_abandoners" and r["owner"] for r in rows)


def test_bad_input_gets_a_clear_error(tmp_path):
    out = subprocess.run([BEACON, "ingest", "--landing", str(tmp_path / "nowhere"), "--until", "not-a-date"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "error" in out.stderr and "not-a-date" in out.stderr


def test_every_command_group_registers_its_commands():
    from beacon.cli import GROUPS, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"generate", "demo", "ingest", "audiences", "activate", "journeys", "ml", "identity",
                                "measure", "privacy", "bench", "serve", "up", "down", "status", "warehouse"}
    assert len(GROUPS) == 12


def test_model_choices_are_the_scored_models():
    from beacon.cli.ml import MODELS
    from ml.score import MODELS as SCORED

    assert tuple(MODELS) == SCORED  # the CLI keeps its own copy only to start without LightGBM


def test_the_old_repeats_flag_still_means_repeat():
    from beacon.cli import build_parser

    assert build_parser().parse_args(["bench", "activation", "--repeats", "5"]).repeat == 5
    assert build_parser().parse_args(["bench", "activation"]).repeat == 3


def test_demo_runs_three_days_by_default_and_refuses_fewer_than_one():
    from beacon.cli import build_parser

    assert build_parser().parse_args(["demo"]).days == 3
    out = subprocess.run([BEACON, "demo", "--days", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "--days must be at least 1" in out.stderr


def test_demo_summary_shows_planted_beside_measured():
    from rich.console import Console

    from beacon.cli.demo import planted_table

    rows = [{"campaign": "journey:win_back", "arm": "email", "planted": 0.12, "expected": 0.041, "measured": 0.052,
             "low": 0.021, "high": 0.083, "excludes_zero": True, "note": ""},
            {"campaign": "journey:birthday", "arm": "treatment", "planted": 0.01, "expected": None, "measured": None,
             "low": None, "high": None, "excludes_zero": None, "note": "no assignments to compare"}]
    console = Console(width=200, record=True)
    console.print(planted_table(rows))
    text = console.export_text()
    assert "journey:win_back" in text and "+12.00" in text and "+4.10" in text and "+5.20 [+2.10, +8.30]" in text
    assert "no assignments to compare" in text and "yes" in text
