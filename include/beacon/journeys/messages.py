"""A journey send's message: the send node's template from `journeys/templates/`, rendered by
`beacon.personalize.render` with the person's attributes, scores and reason codes, segments, the journey's
split arm as `branch` and product recommendations from `ml.recommendations`.

The engine loads the context of the people it is about to send to (one query per table, not per person) and
hands this object to a destination that can use it (`SmtpEmail.use_journey_messages`); the sync engine, its
payload hash and governance stay as they are, so exactly-once is unchanged: only the message body is new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
from jinja2 import TemplateNotFound, UndefinedError
from markupsafe import escape

from beacon.audiences import Audience
from beacon.personalize.render import (
    Renderer,
    TemplateFieldError,
    _field_of,
    _segments_by_person,
    build_context,
    load_inputs,
)
from beacon.warehouse import sql_literal, table_exists


def _html_from_text(text: str) -> str:
    """Journey templates may have no `.html.j2` part: the HTML alternative is then the text, escaped."""
    return f'<html><body><pre style="font-family:inherit;white-space:pre-wrap">{escape(text)}</pre></body></html>'


class JourneyMessages:
    """Renders `journey_template` rows for the people loaded by `load` (see the module docstring)."""

    def __init__(self, templates_dir: str | Path, contexts: Mapping[str, dict]):
        self.renderer = Renderer(templates_dir)
        self.contexts = contexts

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, who: str, templates_dir: str | Path,
             audiences: Sequence[Audience] = (), relations: Mapping[str, str] | None = None) -> JourneyMessages:
        """Contexts of the people in temp table `who` (customer_id, arm): attributes (marts.customer_profile),
        ml.scores, ml.recommendations and the segments (audiences, highest priority first) they are in."""
        people_arm = dict(con.execute(f"SELECT customer_id::VARCHAR, arm FROM {who}").fetchall())
        ids = sorted(people_arm)
        inputs = load_inputs(con, ids)
        scores: dict[str, dict] = {}
        for r in inputs["scores"].to_dict("records"):
            s = {k: v for k, v in r.items() if k not in ("customer_id", "model")}
            s["reasons"] = [s[k] for k in ("reason_1", "reason_2", "reason_3") if isinstance(s.get(k), str)]
            scores.setdefault(str(r["customer_id"]), {})[r["model"]] = s
        recs: dict[str, list[dict]] = {}
        for r in inputs["recommendations"].sort_values(["customer_id", "rank"], kind="stable").to_dict("records"):
            recs.setdefault(str(r.pop("customer_id")), []).append(r)
        segs = _segments(con, who, audiences, relations or {})
        people = {str(p["customer_id"]): p for p in inputs["people"].to_dict("records")}
        contexts = {cid: build_context(people.get(cid, {"customer_id": cid}), scores=scores.get(cid),
                                       segments=segs.get(cid, []), branch=people_arm.get(cid),
                                       recommendations=recs.get(cid, []))
                    for cid in ids}
        return cls(templates_dir, contexts)

    def render(self, row: Mapping) -> tuple[str, str, str]:
        """Subject, text and HTML of `row["journey_template"]` for `row["customer_id"]`; a missing field raises
        TemplateFieldError naming template, field and customer."""
        cid, name = str(row["customer_id"]), str(row["journey_template"])
        ctx = {**self.contexts.get(cid, build_context({"customer_id": cid})),
               "journey": row.get("journey"), "journey_node": row.get("journey_node")}
        out: dict[str, str | None] = {}
        for kind in ("subject", "txt", "html"):
            tname = f"{name}.{kind}.j2"
            try:
                tpl = self.renderer.env.get_template(tname)
            except TemplateNotFound as exc:
                if kind == "html":
                    out[kind] = None
                    continue
                raise TemplateFieldError(tname, "template", cid, hint=f"no file {tname}") from exc
            try:
                out[kind] = tpl.render(ctx)
            except UndefinedError as exc:
                raise TemplateFieldError(tname, getattr(exc, "field", None) or _field_of(exc), cid) from exc
        text = out["txt"] or ""
        return " ".join((out["subject"] or "").split()), text, out["html"] or _html_from_text(text)


def _segments(con: duckdb.DuckDBPyConnection, who: str, audiences: Sequence[Audience],
              relations: Mapping[str, str]) -> dict[str, list[str]]:
    """(customer_id -> segment names) for the people in `who`, from the audiences' relations that exist."""
    import pandas as pd

    order = [a.name for a in sorted(audiences, key=lambda a: -a.priority)]
    parts = []
    for a in audiences:
        rel = relations.get(a.name, a.relation)
        schema, _, table = rel.rpartition(".")
        if table_exists(con, schema or "main", table):
            parts.append(f"SELECT customer_id::VARCHAR AS customer_id, {sql_literal(a.name)} AS segment FROM {rel} "
                         f"WHERE customer_id::VARCHAR IN (SELECT customer_id FROM {who})")
    if not parts:
        return {}
    m = con.execute(" UNION ALL ".join(parts)).df()
    return _segments_by_person(m if len(m) else pd.DataFrame(columns=["customer_id", "segment"]), order)
