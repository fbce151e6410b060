"""Who sees what on the Beacon page: personal data is masked unless the user's role may read it."""

from __future__ import annotations

import copy
import re

# Fields that identify a person (in samples and qualifying rows).
PERSONAL = re.compile(r"(^|_)(email|first_name|last_name|full_name|name|phone|address|street|city|zip|postcode|"
                      r"birth|ip|job_title)($|_)", re.IGNORECASE)
NOT_PERSONAL = {"company_name", "audience", "model", "destination", "table", "suite", "step_name", "node_name",
                "journey_name", "event_name", "segment_name"}


def is_personal(field: str) -> bool:
    return field not in NOT_PERSONAL and bool(PERSONAL.search(field))


def mask(value) -> str | None:
    """`kristi.eaton@merrittlabs.com` -> `k•••@•••.com`; `Kristi` -> `K•••` (enough to tell rows apart, no more)."""
    if value is None:
        return None
    text = str(value)
    if "@" in text:
        local, _, domain = text.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}•••@•••.{tld}" if tld else f"{local[:1]}•••@•••"
    return f"{text[:1]}•••" if text else text


def _mask_row(row: dict) -> dict:
    return {k: (mask(v) if is_personal(k) else _mask_row(v) if isinstance(v, dict) else v) for k, v in row.items()}


def for_viewer(snapshot: dict, personal_data: bool) -> dict:
    """The snapshot as this viewer may see it: unchanged with `personal_data`, else every personal field masked."""
    view = copy.deepcopy(snapshot)
    view["personal_data"] = personal_data
    if personal_data:
        return view
    for a in view.get("audiences", []):
        a["sample"] = [_mask_row(r) for r in a.get("sample", [])]
    # The journeys and results sections hold counts and statistics only; any row sample there is masked too.
    for key in ("journeys", "measurement"):
        for t in view.get(key) or []:
            if "sample" in t:
                t["sample"] = [_mask_row(r) for r in t["sample"]]
    return view
