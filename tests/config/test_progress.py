"""Progress of long commands: on a terminal only, quiet when disabled (--json) or redirected."""

from __future__ import annotations

import io

from beacon.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stages_and_durations_are_reported_when_enabled():
    out = io.StringIO()
    with Progress(enabled=True, file=out, title="bench") as p:
        p.stage("generate")
        p.stage("dbt build")
    lines = out.getvalue().splitlines()
    assert lines[0] == "bench: generate …" and lines[1].startswith("bench: generate done in ")
    assert lines[2] == "bench: dbt build …" and lines[3].startswith("bench: dbt build done in ")
    assert set(p.seconds) == {"generate", "dbt build"}


def test_nothing_is_written_when_disabled_or_not_a_terminal():
    for p, out in ((Progress(enabled=False, file=(a := _Tty())), a), (Progress(file=(b := io.StringIO())), b)):
        with p:
            p.stage("generate")
        assert out.getvalue() == "" and not p.enabled and "generate" in p.seconds


def test_on_by_default_on_a_terminal():
    out = _Tty()
    with Progress(file=out) as p:
        p.stage("ingest")
    assert p.enabled and "ingest done in" in out.getvalue()
