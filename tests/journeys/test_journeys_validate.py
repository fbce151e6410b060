"""Journey validation: one test per rule, each error names the file, the journey and the node."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from beacon.journeys.model import journey_schema
from beacon.journeys.validate import Catalog, check_versions, default_catalog, load_dir, parse

ROOT = Path(__file__).resolve().parents[2]
CAT = Catalog(audiences=frozenset({"newbies", "vips"}), templates=frozenset({"hello", "bye"}))
BASE = {
    "name": "demo", "version": 1, "entry": {"audience": "newbies"}, "start": "hello",
    "nodes": [
        {"id": "hello", "type": "send", "channel": "email", "template": "hello", "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "1d", "next": "vip"},
        {"id": "vip", "type": "branch", "rules": [{"when": {"segment": "vips"}, "next": "bye"}], "default": "done"},
        {"id": "bye", "type": "send", "channel": "email", "template": "bye", "next": "done"},
        {"id": "done", "type": "exit"},
    ],
}


def problems(tmp_path: Path, doc: dict, name: str = "demo.yml") -> list[str]:
    (tmp_path / name).write_text(yaml.safe_dump(doc))
    return load_dir(tmp_path, CAT).problems


def mutate(**changes):
    d = copy.deepcopy(BASE)
    for k, v in changes.items():
        d[k] = v
    return d


def test_the_base_journey_is_valid(tmp_path):
    assert problems(tmp_path, BASE) == []


def test_unknown_node_type_names_file_journey_and_node(tmp_path):
    d = copy.deepcopy(BASE)
    d["nodes"][1]["type"] = "snooze"
    (p,) = problems(tmp_path, d)
    assert "demo.yml: journey demo: node pause" in p and "unknown node type 'snooze'" in p


def test_unknown_field_on_a_node(tmp_path):
    d = copy.deepcopy(BASE)
    d["nodes"][0]["tempalte"] = "hello"
    (p,) = problems(tmp_path, d)
    assert "journey demo: node hello: tempalte: unknown field" in p


def test_unknown_top_level_field(tmp_path):
    (p,) = problems(tmp_path, mutate(colour="blue"))
    assert "journey demo: colour: unknown field" in p


def test_unreachable_node(tmp_path):
    d = copy.deepcopy(BASE)
    d["nodes"].insert(4, {"id": "orphan", "type": "wait", "duration": "1h", "next": "done"})
    assert problems(tmp_path, d) == [f"{tmp_path / 'demo.yml'}: journey demo: node orphan: unreachable from the start node"]


def test_loop_without_a_wait(tmp_path):
    d = copy.deepcopy(BASE)
    d["nodes"][3]["next"] = "vip"  # bye -> vip -> bye: a branch and a send, no wait between
    ps = problems(tmp_path, d)
    assert any("loop without a wait" in p and "node " in p for p in ps), ps


def test_a_loop_through_a_wait_is_fine(tmp_path):
    d = copy.deepcopy(BASE)
    d["nodes"][3]["next"] = "pause"
    assert problems(tmp_path, d) == []


@pytest.mark.parametrize("where, value, kind", [
    (("entry", "audience"), "nobody", "audience"),
    (("nodes", 2, "rules", 0, "when", "segment"), "ghosts", "audience"),
    (("nodes", 0, "template"), "missing_tpl", "template"),
    (("nodes", 0, "channel"), "pigeon", "channel"),
])
def test_unknown_references(tmp_path, where, value, kind):
    d = copy.deepcopy(BASE)
    target = d
    for k in where[:-1]:
        target = target[k]
    target[where[-1]] = value
    ps = problems(tmp_path, d)
    assert len(ps) == 1 and f"unknown {kind} {value!r}" in ps[0] and "journey demo" in ps[0], ps


def test_unknown_event(tmp_path):
    ps = problems(tmp_path, mutate(entry={"event": {"name": "cart_exploded"}}))
    assert len(ps) == 1 and "unknown event 'cart_exploded'" in ps[0]


def test_missing_exit(tmp_path):
    d = copy.deepcopy(BASE)
    d["nodes"] = [{"id": "hello", "type": "send", "channel": "email", "template": "hello", "next": "pause"},
                  {"id": "pause", "type": "wait", "duration": "1d", "next": "hello"}]
    ps = problems(tmp_path, d)
    assert any("has no exit node" in p for p in ps), ps


def test_next_names_an_unknown_node(tmp_path):
    d = copy.deepcopy(BASE)
    d["nodes"][1]["next"] = "nowhere"
    (p,) = problems(tmp_path, d)
    assert "node pause: leads to unknown node 'nowhere'" in p


def test_duplicate_journey_names_across_files(tmp_path):
    problems(tmp_path, BASE, "a.yml")
    ps = problems(tmp_path, BASE, "b.yml")
    assert any("name already used" in p for p in ps)


def test_removing_a_node_that_holds_people_needs_a_mapping():
    v2 = copy.deepcopy(BASE)
    v2["version"] = 2
    v2["nodes"][1] = {"id": "pause2", "type": "wait", "duration": "2d", "next": "vip"}
    v2["nodes"][0]["next"] = "pause2"
    j, ps = parse("demo.yml", yaml.safe_dump(v2))
    assert ps == []
    (p,) = check_versions("demo.yml", j, {(1, "pause"): 12, (1, "hello"): 0})
    assert "node pause: removed in version 2 but 12 people of version 1 are there" in p
    mapped, _ = parse("demo.yml", yaml.safe_dump({**v2, "migrate": {"pause": "pause2"}}))
    assert check_versions("demo.yml", mapped, {(1, "pause"): 12}) == []
    kept, _ = parse("demo.yml", yaml.safe_dump({**v2, "migrate": {"pause": None}}))
    assert check_versions("demo.yml", kept, {(1, "pause"): 12}) == []


def test_builtin_journeys_validate_against_the_project():
    folder = ROOT / "journeys"
    rep = load_dir(folder, default_catalog(folder, ROOT / "dbt_project"))
    assert rep.problems == []
    assert {x.journey.name for x in rep.journeys} >= {"welcome_series", "cart_abandonment", "post_purchase_cross_sell",
                                                      "win_back", "lead_nurture", "birthday"}


def test_json_schema_accepts_the_builtin_files_and_refuses_unknown_fields():
    import jsonschema

    schema = journey_schema()
    for p in (ROOT / "journeys").glob("*.yml"):
        jsonschema.validate(yaml.safe_load(p.read_text()), schema)
    bad = copy.deepcopy(BASE)
    bad["nodes"][0]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_send_templates_are_parsed_and_their_fields_checked(tmp_path):
    tpl = tmp_path / "templates"
    tpl.mkdir()
    (tpl / "hello.subject.j2").write_text("Hi {{ first_name }}")
    (tpl / "hello.txt.j2").write_text("{% for p in recommendations %}{{ p.name }}{% endfor %}\n{{ favourite_colour }}")
    (tpl / "bye.subject.j2").write_text("Bye")
    (tpl / "bye.txt.j2").write_text("line one\n{% if first_name %}unclosed")
    cat = Catalog(audiences=CAT.audiences, templates=CAT.templates, template_dir=tpl,
                  attributes=frozenset({"customer_id", "first_name"}))
    (tmp_path / "demo.yml").write_text(yaml.safe_dump(BASE))
    got = load_dir(tmp_path, cat).problems
    assert len(got) == 2, got
    assert "node hello" in got[0] and "unknown field(s) ['favourite_colour']" in got[0]
    assert "node bye" in got[1] and "bye.txt.j2 line 2" in got[1]
    # The project's own journeys and templates pass (the catalog reads dim_customers' documented columns).
    rep = load_dir(ROOT / "journeys", default_catalog(ROOT / "journeys", ROOT / "dbt_project"))
    assert rep.problems == [] and len(rep.journeys) >= 6
