"""Load and check journey files: every error names the file, the journey and the node.

Fast enough for DAG-parse time: YAML, pydantic and a walk of a small graph; the catalogue of audiences,
templates and events is read from files (segment SQL names, the templates folder), not the warehouse.
The versioning rule needs the warehouse (who is where) and is checked by `check_versions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from beacon.audiences import CHANNELS
from beacon.journeys import nodes as node_types
from beacon.journeys.model import Journey, successors

# Events a journey may name: the web tracking events (snake_case, as marts.fct_web_events has them)
# and email events prefixed `email_` (marts.fct_email_events), see docs/journeys.md.
WEB_EVENTS = ("product_viewed", "product_added", "checkout_started", "order_completed", "form_submitted",
              "webinar_registered", "page", "identify")
EMAIL_EVENTS = tuple(f"email_{e}" for e in ("sent", "delivered", "open", "click", "bounce", "complaint", "unsubscribe"))
KNOWN_EVENTS = WEB_EVENTS + EMAIL_EVENTS


class JourneyError(ValueError):
    """One or more journey files are invalid; the message lists every problem, one a line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Catalog:
    """What a journey may refer to."""

    audiences: frozenset[str]
    templates: frozenset[str]
    events: frozenset[str] = frozenset(KNOWN_EVENTS)
    channels: frozenset[str] = frozenset(CHANNELS)
    template_dir: Path | None = None  # set: send templates are parsed (syntax) and their fields checked
    attributes: frozenset[str] | None = None  # person attributes templates may use (None: not checked)


@dataclass
class Loaded:
    path: Path
    journey: Journey


@dataclass
class Report:
    journeys: list[Loaded] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def raise_if_any(self) -> None:
        if self.problems:
            raise JourneyError(self.problems)


def default_catalog(journeys_dir: Path, dbt_project_dir: Path) -> Catalog:
    """Segments from dbt_project/models/segments/*.sql, templates from journeys/templates/<name>.<part>.j2."""
    segs = frozenset(p.stem for p in (dbt_project_dir / "models" / "segments").glob("*.sql"))
    tpl = frozenset(p.name.split(".")[0] for p in (journeys_dir / "templates").glob("*.j2"))
    return Catalog(audiences=segs, templates=tpl, template_dir=journeys_dir / "templates",
                   attributes=_documented_attributes(dbt_project_dir))


def _documented_attributes(dbt_project_dir: Path) -> frozenset[str] | None:
    """marts.customer_profile's documented columns (what a template may read of a person), None if not found."""
    for p in sorted((dbt_project_dir / "models" / "marts").rglob("*.yml")):
        for m in (yaml.safe_load(p.read_text()) or {}).get("models", []) or []:
            if m.get("name") == "customer_profile" and m.get("columns"):
                return frozenset(c["name"] for c in m["columns"])
    return None


# Names a journey template may read besides the person's attributes (beacon.journeys.messages' context).
CONTEXT_NAMES = frozenset({"scores", "segments", "branch", "recommendations", "journey", "journey_node"})


def _template_problems(where: str, name: str, c: Catalog) -> list[str]:
    """Syntax errors (file and line) and fields that are neither context names nor person attributes."""
    from jinja2 import TemplateSyntaxError, meta

    from beacon.personalize.render import Renderer

    env = Renderer(c.template_dir).env
    out, used = [], set()
    for kind in ("subject", "txt", "html"):
        f = c.template_dir / f"{name}.{kind}.j2"
        if not f.exists():
            if kind != "html":  # the HTML part is optional (the text is used)
                out.append(f"{where}: template {f.name} is missing")
            continue
        try:
            used |= meta.find_undeclared_variables(env.parse(f.read_text(), name=f.name))
        except TemplateSyntaxError as exc:
            out.append(f"{where}: template {f.name} line {exc.lineno}: {exc.message}")
    unknown = sorted(used - set(env.globals) - CONTEXT_NAMES - (c.attributes or frozenset()))
    if unknown and c.attributes is not None:
        out.append(f"{where}: template {name} uses unknown field(s) {unknown}; a person has the marts.customer_profile "
                   f"columns and {sorted(CONTEXT_NAMES)}")
    return out


def _where(path: Path | str, journey: str | None, node: str | None = None) -> str:
    out = f"{path}: journey {journey or '?'}"
    return out + (f": node {node}" if node else "")


def _pydantic_problems(path: Path | str, raw: dict, exc: ValidationError) -> list[str]:
    """Pydantic's errors, with the node's id instead of its list index."""
    name = raw.get("name") if isinstance(raw, dict) else None
    out = []
    for e in exc.errors():
        loc = list(e["loc"])
        node = None
        if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
            nodes = raw.get("nodes") or []
            item = nodes[loc[1]] if loc[1] < len(nodes) else {}
            node = (item.get("id") if isinstance(item, dict) else None) or f"#{loc[1] + 1}"
            loc = loc[2:]
            # The discriminator adds the node type to the location: drop it, it is not a field.
            if loc and isinstance(item, dict) and loc[0] == item.get("type"):
                loc = loc[1:]
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "union_tag_invalid":
            t = e["input"].get("type") if isinstance(e.get("input"), dict) else None
            msg = f"unknown node type {t!r}; known: {', '.join(node_types.types())}"
        field_ = ".".join(str(x) for x in loc)
        out.append(f"{_where(path, name, node)}: {field_ + ': ' if field_ else ''}{msg}")
    return out


def parse(path: Path | str, text: str) -> tuple[Journey | None, list[str]]:
    """The journey in `text` (from `path`), or None and the problems."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, [f"{path}: not valid YAML: {exc}"]
    if not isinstance(raw, dict):
        return None, [f"{path}: a journey file holds a mapping (name, version, entry, start, nodes, ...)"]
    try:
        return Journey.model_validate(raw), []
    except ValidationError as exc:
        return None, _pydantic_problems(path, raw, exc)


def check(path: Path | str, j: Journey, catalog: Catalog | None = None) -> list[str]:
    """Graph and reference checks of one parsed journey."""
    out: list[str] = []

    def err(node: str | None, msg: str) -> None:
        out.append(f"{_where(path, j.name, node)}: {msg}")

    ids = [n.id for n in j.nodes]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    for d in dup:
        err(d, "node id used more than once")
    by_id = {n.id: n for n in j.nodes}
    if j.start not in by_id:
        err(None, f"start names unknown node {j.start!r}")
    for n in j.nodes:
        for s in successors(n):
            if s not in by_id:
                err(n.id, f"leads to unknown node {s!r}")
    if out:
        return out
    # Reachability from the start.
    seen, stack = set(), [j.start]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        stack.extend(successors(by_id[cur]))
    for n in j.nodes:
        if n.id not in seen:
            err(n.id, "unreachable from the start node")
    # Exits: at least one, and every node can reach one (nobody is stuck forever).
    exits = {n.id for n in j.nodes if node_types.handler(n).exits}
    if not exits:
        err(None, "has no exit node")
    else:
        can_exit = set(exits)
        changed = True
        while changed:
            changed = False
            for n in j.nodes:
                if n.id not in can_exit and any(s in can_exit for s in successors(n)):
                    can_exit.add(n.id)
                    changed = True
        for n in j.nodes:
            if n.id in seen and n.id not in can_exit:
                err(n.id, "no path from this node reaches an exit")
    # Loops without a wait: a cycle through instantaneous nodes only would spin within one run.
    waits = {n.id for n in j.nodes if node_types.handler(n).waits}
    for cyc in _cycles_without(by_id, waits):
        err(cyc[0], f"loop without a wait: {' -> '.join(cyc + [cyc[0]])}")
    # Checks of each node type (e.g. an engagement condition looks at an earlier send of this journey).
    for n in j.nodes:
        for msg in node_types.handler(n).check(n, by_id):
            err(n.id, msg)
    if "left_audience" in j.exit_when and j.entry.kind not in ("audience", "schedule"):
        err(None, "exit_when left_audience needs an audience or schedule entry")
    if catalog is not None:
        out.extend(_references(path, j, catalog))
    return out


def _cycles_without(by_id: dict, waits: set[str]) -> list[list[str]]:
    """Cycles in the graph of non-wait nodes (one per strongly connected group, as a path)."""
    graph = {k: [s for s in successors(n) if s not in waits] for k, n in by_id.items() if k not in waits}
    found, done = [], set()
    for root in graph:
        if root in done:
            continue
        # Iterative DFS with an explicit path to report the cycle.
        path, on_path, it = [root], {root}, [iter(graph[root])]
        while it:
            nxt = next(it[-1], None)
            if nxt is None:
                done.add(path[-1])
                on_path.discard(path.pop())
                it.pop()
                continue
            if nxt in on_path:
                found.append(path[path.index(nxt):])
            elif nxt not in done and nxt in graph:
                path.append(nxt)
                on_path.add(nxt)
                it.append(iter(graph[nxt]))
    uniq, seen = [], set()
    for c in found:
        key = frozenset(c)
        if key not in seen:
            seen.add(key)
            uniq.append(c)
    return uniq


def _references(path: Path | str, j: Journey, c: Catalog) -> list[str]:
    out: list[str] = []

    def need(kind: str, value: str | None, known: frozenset[str], node: str | None = None) -> None:
        if value is not None and value not in known:
            out.append(f"{_where(path, j.name, node)}: unknown {kind} {value!r}; known: {', '.join(sorted(known)) or '(none)'}")

    e = j.entry
    need("audience", e.audience, c.audiences)
    need("audience", e.schedule.audience if e.schedule else None, c.audiences)
    need("event", e.event.name if e.event else None, c.events)
    need("event", j.goal.event if j.goal else None, c.events)
    known = {"audience": c.audiences, "event": c.events, "channel": c.channels, "template": c.templates}
    for n in j.nodes:
        for kind, value in node_types.handler(n).references(n):
            need(kind, value, known[kind], n.id)
            if kind == "template" and c.template_dir is not None and value in c.templates:
                out.extend(_template_problems(_where(path, j.name, n.id), value, c))
    return out


def load_dir(journeys_dir: Path, catalog: Catalog | None = None, files: Iterable[Path] | None = None) -> Report:
    """Parse and check every `*.yml` in `journeys_dir`; names must be unique across files."""
    rep = Report()
    seen: dict[str, Path] = {}
    for p in sorted(files if files is not None else Path(journeys_dir).glob("*.yml")):
        j, problems = parse(p, Path(p).read_text())
        rep.problems.extend(problems)
        if j is None:
            continue
        if j.name in seen:
            rep.problems.append(f"{_where(p, j.name)}: name already used by {seen[j.name]}")
            continue
        seen[j.name] = p
        problems = check(p, j, catalog)
        rep.problems.extend(problems)
        if not problems:
            rep.journeys.append(Loaded(p, j))
    return rep


def check_versions(path: Path | str, j: Journey, occupied: dict[tuple[int, str], int]) -> list[str]:
    """The versioning rule: a node of an older version that holds people and is gone from this version needs a
    mapping in `migrate` (to a node of this version, or null: finish on the old version)."""
    out = []
    for (version, node), n in sorted(occupied.items()):
        if version == j.version or n <= 0:
            continue
        if node in j.migrate:
            target = j.migrate[node]
            if target is not None and target not in j.node_ids:
                out.append(f"{_where(path, j.name, node)}: migrate maps to unknown node {target!r}")
            continue
        if node not in j.node_ids:
            out.append(f"{_where(path, j.name, node)}: removed in version {j.version} but {n} people of version "
                       f"{version} are there; map it in `migrate` (to a node, or null to finish on version {version})")
    return out


def project_report(strict: bool = True) -> Report:
    """The project's journeys (`<home>/journeys/*.yml`) checked against its segments and templates; with
    `strict`, any problem raises JourneyError listing all of them. Light: the DAG file calls it at parse time."""
    from beacon.config import settings

    s = settings()
    folder = s.home / "journeys"
    rep = load_dir(folder, default_catalog(folder, s.dbt_project_dir))
    if strict:
        rep.raise_if_any()
    return rep


def segments_used(j: Journey) -> set[str]:
    """The audiences (segments) a journey reads: its entry, wait-for and branch rules."""
    e = j.entry
    used = {e.audience, e.schedule.audience if e.schedule else None}
    for n in j.nodes:
        used.update(value for kind, value in node_types.handler(n).references(n) if kind == "audience")
    return {u for u in used if u}
