"""What a load reports: one FileLoad per unit (a file or an API page) and the LoadSummary of a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class FileLoad:
    """The outcome of loading one unit (a file, or an API page)."""

    source: str
    file: str
    status: str  # loaded | skipped | failed
    reason: str = ""  # why a failed unit failed (named reason, see docs/ingestion.md)
    batch_id: str = ""
    sha256: str = ""
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    error: str = ""
    header_mapping: dict[str, str] = field(default_factory=dict)  # CSV header -> column, where not identical
    encoding: str = ""  # the encoding the file was read in (BOM or the source's `encoding`)
    seconds: float = 0.0
    # Why a failure could not be written to the ledger and the quarantine (the warehouse refused); '' when it was.
    unrecorded: str = ""

    def error_text(self) -> str:
        """The failure message, with the note that it could not be recorded where that is so."""
        if not self.unrecorded:
            return self.error
        return f"{self.error} (and the failure could not be recorded: {self.unrecorded})"


@dataclass
class LoadSummary:
    """All unit loads of one ingest run."""

    files: list[FileLoad]

    def totals(self) -> dict[str, int]:
        t = {"files_loaded": 0, "files_skipped": 0, "files_failed": 0, "rows_read": 0, "rows_loaded": 0,
             "rows_quarantined": 0}
        for f in self.files:
            t[f"files_{f.status}"] += 1
            t["rows_read"] += f.rows_read
            t["rows_loaded"] += f.rows_loaded
            t["rows_quarantined"] += f.rows_quarantined
        return t

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            for k, v in f.reasons.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))

    def schema_changes(self) -> dict[str, list[str]]:
        """New columns added to raw tables in this run, per source."""
        out: dict[str, list[str]] = {}
        for f in self.files:
            for c in f.added_columns:
                out.setdefault(f.source, []).append(c)
        return out

    def failures(self) -> list[dict[str, str]]:
        """The failed units: file, reason and message."""
        return [{"file": f.file, "reason": f.reason, "error": f.error_text()} for f in self.files
                if f.status == "failed"]

    def to_dict(self) -> dict:
        return {"totals": self.totals(), "reasons": self.reasons(), "schema_changes": self.schema_changes(),
                "failures": self.failures(), "files": [asdict(f) for f in self.files]}
