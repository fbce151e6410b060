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
