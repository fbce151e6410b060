"""Message templates for one person or in bulk: subject, text and HTML from Jinja in its sandbox.

A message `NAME` is three files in a templates folder: `NAME.subject.j2`, `NAME.txt.j2`, `NAME.html.j2`
(HTML autoescaped). The context of a person (docs/personalization.md):

- every attribute of the person (`first_name`, `city`, ...); a NULL value counts as missing;
- `scores.lead`, `scores.churn`, `scores.value`: `{score, decile, reasons}` from `ml.scores`;
- `segments` (the segments the person is in, in priority order) and `branch` (the journey branch or None);
- `recommendations`: a list of `{rank, product_id, name, category, price, score}`, best first;
- `block_for("hero")`: a dynamic block chosen by branch, then segment, then default (files
  `blocks/hero/branch-<branch>.<kind>.j2`, `blocks/hero/<segment>.<kind>.j2`, `blocks/hero/default.<kind>.j2`).

A missing field is an error naming the template and the field (`TemplateFieldError`), unless the template
says what to do: `{{ first_name | default("there") }}`, `{{ first_name or "there" }}` or `{% if first_name %}`.
Rendering never silently prints an empty name or "None".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    UndefinedError,
    pass_context,
)
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

if TYPE_CHECKING:  # pandas is imported where used: journey validation runs at DAG-parse time
    import pandas as pd

# The activation destination's templates (default.*, per-audience) are the last fallback of every renderer.
PACKAGE_TEMPLATES = Path(__file__).resolve().parents[1] / "activation" / "templates"
KINDS = ("subject", "txt", "html")
# ml.scores model name -> the name templates use.
SCORE_NAMES = {"lead_score": "lead", "churn": "churn", "ltv": "value"}


class TemplateFieldError(ValueError):
    """A template used a field the person does not have (or a block with no variant that fits)."""

    def __init__(self, template: str, field: str, customer_id: str | None = None, hint: str | None = None):
        hint = hint or f'write {{{{ {field} | default("...") }}}} for a fallback'
        self.template, self.field, self.customer_id, self.hint = template, field, customer_id, hint
        who = f" for customer {customer_id}" if customer_id is not None else ""
        super().__init__(f"template {template}: field {field!r} is missing{who} ({hint})")


class _Missing(StrictUndefined):
    """Strict when printed or iterated, but false in a test, so `x or "fallback"` and `{% if x %}` work."""

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, name: str):  # chainable: `scores.lead.decile | default("n/a")` works without scores
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key):
        if isinstance(key, str) and key[:2] == "__":
            return self._fail_with_undefined_error()
        return self

    def _fail_with_undefined_error(self, *args, **kwargs):
        name = self._undefined_name
        if self._undefined_obj is not None and name is not None and not isinstance(self._undefined_obj, str):
            parent = getattr(self._undefined_obj, "_field_path", None)
            name = f"{parent}.{name}" if parent else name
        err = UndefinedError(f"{name!r} is undefined")
        err.field = name or "?"  # type: ignore[attr-defined]
        raise err


class _Attrs(dict):
    """A nested context value (scores, one score) that knows its path, so errors name `scores.lead.decile`."""

    def __init__(self, path: str, items: Mapping):
        super().__init__(items)
        self._field_path = path


def _autoescape(name: str | None) -> bool:
    return bool(name and (name.endswith(".html.j2") or name.endswith(".html")))


def make_environment(templates_dirs: Iterable[str | Path] = (), *, strict: bool = True,
                     extra_loaders: Sequence[BaseLoader] = ()) -> SandboxedEnvironment:
    """The sandboxed environment every Beacon message renders in: the given folders first, then the package
    templates; HTML (`*.html.j2`) autoescaped. `strict=False` keeps the activation email's old rule
    (a missing value renders empty)."""
    from jinja2 import ChainableUndefined

    loaders = [FileSystemLoader(str(d)) for d in templates_dirs if d] + list(extra_loaders)
    env = SandboxedEnvironment(loader=ChoiceLoader([*loaders, FileSystemLoader(str(PACKAGE_TEMPLATES))]),
                               undefined=_Missing if strict else ChainableUndefined, autoescape=_autoescape,
                               keep_trailing_newline=True)
    env.filters["money"] = _money
    env.globals["block_for"] = _block_for
    return env


def _money(value: Any, currency: str = "$") -> str:
    """`{{ price | money }}` -> `$12.50`."""
    try:
        return f"{currency}{float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


@pass_context
def _block_for(ctx, name: str):
    """The first block variant that exists: the journey branch, then each segment in order, then `default`."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", str(name)):
        raise TemplateFieldError(ctx.name or "?", f"block {name!r}", hint="block names are letters, digits, _ and -")
    kind = next((k for k in KINDS if (ctx.name or "").endswith(f".{k}.j2")), "txt")
    keys = []
    branch = ctx.get("branch")
    if branch:
        keys.append(f"branch-{branch}")
    segs = ctx.get("segments")
    keys += [str(s) for s in (segs if segs else [])]
    keys.append("default")
    env = ctx.environment
    for key in keys:
        try:
            tpl = env.get_template(f"blocks/{name}/{key}.{kind}.j2")
        except TemplateNotFound:
            continue
        out = tpl.render(ctx.get_all())
        return Markup(out) if kind == "html" else out
    raise TemplateFieldError(ctx.name or "?", f"block {name!r}",
                             hint=f"add blocks/{name}/default.{kind}.j2 or a variant for {keys[:-1]}")


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


def _is_missing(v: Any) -> bool:
    if isinstance(v, (str, int, list, tuple, dict)):  # the common cases first: rendering is per person
        return False
    import pandas as pd

    if v is None or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    try:
        return bool(pd.isna(v)) if not isinstance(v, (list, tuple, dict, set, str)) else False
    except (TypeError, ValueError):
        return False


def _plain(v: Any) -> Any:
    """numpy scalars and pandas timestamps as plain Python values (the sandbox and the tests see the same)."""
    if isinstance(v, (str, int, float)):
        return v
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return v
    import pandas as pd

    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


def build_context(person: Mapping[str, Any], *, scores: Mapping[str, Mapping] | None = None,
                  segments: Sequence[str] = (), branch: str | None = None,
                  recommendations: Sequence[Mapping] = (), extra: Mapping[str, Any] | None = None) -> dict:
    """The template context of one person; missing (NULL) attributes are left out, so using them is an error."""
    ctx = {k: _plain(v) for k, v in person.items() if not _is_missing(v)}
    sc = {}
    for model, s in (scores or {}).items():
        key = SCORE_NAMES.get(model, model)
        vals = {k: _plain(v) for k, v in s.items() if not _is_missing(v)}
        sc[key] = _Attrs(f"scores.{key}", vals)
    ctx["scores"] = _Attrs("scores", sc)
    ctx["segments"] = list(segments)
    ctx["branch"] = branch
    ctx["recommendations"] = [{k: _plain(v) for k, v in r.items() if not _is_missing(v)} for r in recommendations]
    ctx.update(extra or {})
    return ctx


class Renderer:
    """Renders message templates from `templates_dirs` (first match wins, the package templates last)."""

    def __init__(self, templates_dirs: Iterable[str | Path] | str | Path = (), *, strict: bool = True):
        if isinstance(templates_dirs, (str, Path)):
            templates_dirs = [templates_dirs]
        self.env = make_environment(list(templates_dirs), strict=strict)

    def has_template(self, name: str) -> bool:
        """True when all three parts of message `name` exist."""
        try:
            for kind in KINDS:
                self.env.get_template(f"{name}.{kind}.j2")
        except TemplateNotFound:
            return False
        return True

    def check(self, name: str) -> None:
        """Parse all three parts (a syntax error names file and line); raises FileNotFoundError if one is missing."""
        for kind in KINDS:
            try:
                self.env.get_template(f"{name}.{kind}.j2")
            except TemplateNotFound as exc:
                raise FileNotFoundError(f"template {name}.{kind}.j2 not found") from exc

    def fields(self, name: str) -> set[str]:
        """Top-level names the three parts of `name` read (for validation before any send): person attributes
        and context names such as `scores`, `segments`, `recommendations`; Jinja's own globals left out."""
        from jinja2 import meta

        used: set[str] = set()
        for kind in KINDS:
            tname = f"{name}.{kind}.j2"
            try:
                source = self.env.loader.get_source(self.env, tname)[0]
            except TemplateNotFound as exc:
                raise FileNotFoundError(f"template {tname} not found") from exc
            used |= meta.find_undeclared_variables(self.env.parse(source))
        return used - set(self.env.globals)

    def render_context(self, name: str, ctx: Mapping[str, Any], customer_id: str | None = None) -> Message:
        out = {}
        for kind in KINDS:
            tname = f"{name}.{kind}.j2"
            try:
                tpl = self.env.get_template(tname)
            except TemplateNotFound as exc:
                raise FileNotFoundError(f"template {tname} not found") from exc
            try:
                out[kind] = tpl.render(ctx)
            except UndefinedError as exc:
                raise TemplateFieldError(tname, getattr(exc, "field", None) or _field_of(exc), customer_id) from exc
            except TemplateFieldError as exc:
                if exc.customer_id is None and customer_id is not None:
                    raise TemplateFieldError(exc.template, exc.field, customer_id, exc.hint) from exc
                raise
        return Message(subject=" ".join(out["subject"].split()), text=out["txt"], html=out["html"])

    def render(self, name: str, person: Mapping[str, Any], **context) -> Message:
        """One person's message. `context`: scores, segments, branch, recommendations, extra (see build_context)."""
        cid = person.get("customer_id")
        return self.render_context(name, build_context(person, **context), None if cid is None else str(cid))

    def render_many(self, name: str, people: pd.DataFrame, *, scores: pd.DataFrame | None = None,
                    memberships: pd.DataFrame | None = None, segment_order: Sequence[str] | None = None,
                    branch: str | pd.Series | None = None, recommendations: pd.DataFrame | None = None,
                    extra: Mapping[str, Any] | None = None, errors: str = "collect") -> pd.DataFrame:
        """Messages for every row of `people` (needs `customer_id`): a frame of customer_id, subject, text, html,
        error. `scores`: ml.scores rows; `memberships`: (customer_id, segment); `recommendations`: ml.recommendations
        rows, optionally with name/category/price; `branch`: one name or a Series aligned with `people`.
        `errors="collect"` puts a failing person's error in `error` (others still render); "raise" stops."""
        import pandas as pd

        if "customer_id" not in people.columns:
            raise ValueError(f"render_many({name}): people has no customer_id column")
        if errors not in ("collect", "raise"):
            raise ValueError(f"errors must be 'collect' or 'raise', not {errors!r}")
        self.check(name)
        by_scores = _group(scores, ["model"]) if scores is not None else {}
        by_seg = _segments_by_person(memberships, segment_order) if memberships is not None else {}
        by_rec: dict[str, list[dict]] = {}
        if recommendations is not None and len(recommendations):
            ids = set(people.customer_id.astype(str))
            recs = recommendations[recommendations.customer_id.astype(str).isin(ids)]
            for r in recs.sort_values(["customer_id", "rank"], kind="stable").to_dict("records"):
                by_rec.setdefault(str(r.pop("customer_id")), []).append(r)
        branches = branch.tolist() if isinstance(branch, pd.Series) else [branch] * len(people)
        rows = []
        for person, br in zip(people.to_dict("records"), branches, strict=True):
            cid = str(person["customer_id"])
            sc = {m: {k: v for k, v in r.items() if k not in ("customer_id", "model")}
                  for m, r in by_scores.get(cid, {}).items()}
            for s in sc.values():
                s["reasons"] = [s[k] for k in ("reason_1", "reason_2", "reason_3") if not _is_missing(s.get(k))]
            try:
                m = self.render(name, person, scores=sc, segments=by_seg.get(cid, []), branch=br,
                                recommendations=by_rec.get(cid, []), extra=extra)
                rows.append((cid, m.subject, m.text, m.html, None))
            except (TemplateFieldError, TemplateError, TypeError, ValueError) as exc:
                if errors == "raise":
                    raise
                rows.append((cid, None, None, None, f"{type(exc).__name__}: {exc}"))
        return pd.DataFrame(rows, columns=["customer_id", "subject", "text", "html", "error"])


def _field_of(exc: Exception) -> str:
    m = re.search(r"'([^']+)' is undefined|has no attribute '([^']+)'", str(exc))
    return (m.group(1) or m.group(2)) if m else str(exc)


def _group(scores: pd.DataFrame, _key) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for r in scores.to_dict("records"):
        out.setdefault(str(r["customer_id"]), {})[r["model"]] = r
    return out


def _segments_by_person(memberships: pd.DataFrame, order: Sequence[str] | None) -> dict[str, list[str]]:
    """Each person's segments, in `order` (e.g. audience priority) and then by name."""
    rank = {s: i for i, s in enumerate(order or [])}
    out: dict[str, list[str]] = {}
    for cid, seg in zip(memberships.customer_id.astype(str), memberships.segment.astype(str), strict=True):
        out.setdefault(cid, []).append(seg)
    return {c: sorted(set(s), key=lambda x: (rank.get(x, len(rank)), x)) for c, s in out.items()}


def render(name: str, person: Mapping[str, Any], *, templates_dir: str | Path | Iterable[str | Path] = (),
           **context) -> Message:
    """One message for one person (see `Renderer.render`); `templates_dir` is searched before the package templates."""
    return Renderer(templates_dir).render(name, person, **context)


def render_bulk(name: str, people: pd.DataFrame, *, templates_dir: str | Path | Iterable[str | Path] = (),
                **kwargs) -> pd.DataFrame:
    """Messages for many people (see `Renderer.render_many`)."""
    return Renderer(templates_dir).render_many(name, people, **kwargs)


def load_inputs(con, customer_ids: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """From the warehouse: `people` (marts.customer_profile), `scores` (ml.scores) and `recommendations`
    (ml.recommendations with product name, category and price), for these customers or everyone;
    a table that does not exist yet gives an empty frame."""
    import pandas as pd

    from beacon.warehouse import table_exists

    ids = None if customer_ids is None else pd.DataFrame({"customer_id": [str(c) for c in customer_ids]})
    if ids is not None:
        con.register("_ids", ids)
    where = "WHERE customer_id IN (SELECT customer_id FROM _ids)" if ids is not None else ""

    def q(relation: str, sql: str, cols: list[str]) -> pd.DataFrame:
        """`sql` on `relation`, or an empty frame while the relation does not exist yet."""
        return con.execute(sql).df() if table_exists(con, *relation.split(".")) else pd.DataFrame(columns=cols)
    try:
        people = q("marts.customer_profile", f"SELECT * FROM marts.customer_profile {where}", ["customer_id"])
        scores = q("ml.scores",
                   f"""SELECT customer_id, model, score, decile, reason_1, reason_2, reason_3 FROM ml.scores {where}""",
                   ["customer_id", "model", "score", "decile", "reason_1", "reason_2", "reason_3"])
        has_products = table_exists(con, "staging", "stg_shop__products")
        product = ("p.product_name AS name, p.category, p.price" if has_products
                   else "NULL::VARCHAR AS name, NULL::VARCHAR AS category, NULL::VARCHAR AS price")
        join = "LEFT JOIN staging.stg_shop__products p USING (product_id)" if has_products else ""
        recs = q("ml.recommendations", f"""SELECT r.customer_id, r.rank, r.product_id, r.score, {product}
                     FROM ml.recommendations r {join} {where.replace('customer_id', 'r.customer_id', 1)}
                     ORDER BY r.customer_id, r.rank""",
                 ["customer_id", "rank", "product_id", "score", "name", "category", "price"])
    finally:
        if ids is not None:
            con.unregister("_ids")
    return {"people": people, "scores": scores, "recommendations": recs}
