"""Message templates: context, dynamic blocks, recommendations, errors that name template and field, escaping."""

from __future__ import annotations

import html as _html
import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beacon.personalize.render import Renderer, TemplateFieldError, load_inputs, render, render_bulk
from tests.support import activation_world as aw


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


TEMPLATES = {
    "offer.subject.j2": "{{ first_name | default('Hi') }}, picked for you",
    "offer.txt.j2": ("Hi {{ first_name or 'there' }}\n{{ block_for('hero') }}\n"
                     "{% for r in recommendations %}{{ r.rank }}. {{ r.name }} {{ r.price | money }}\n{% endfor %}"
                     "lead decile {{ scores.lead.decile | default('n/a') }}: {{ scores.lead.reasons | default([]) | join('; ') }}\n"),
    "offer.html.j2": ("<p>Hi {{ first_name | default('there') }}</p>{{ block_for('hero') }}<ul>"
                      "{% for r in recommendations %}<li>{{ r.name }}</li>{% endfor %}</ul>"),
    "blocks/hero/default.txt.j2": "Welcome back.",
    "blocks/hero/default.html.j2": "<p>Welcome back.</p>",
    "blocks/hero/rfm_champions.txt.j2": "Thanks for being a champion, {{ first_name }}.",
    "blocks/hero/rfm_champions.html.j2": "<p>Thanks for being a champion, {{ first_name }}.</p>",
    "blocks/hero/branch-opened.txt.j2": "You opened our last email.",
    "blocks/hero/branch-opened.html.j2": "<p>You opened our last email.</p>",
    "strict.subject.j2": "{{ first_name }}",
    "strict.txt.j2": "{{ city }}",
    "strict.html.j2": "<p>{{ first_name }}</p>",
    "noblock.subject.j2": "x",
    "noblock.txt.j2": "{{ block_for('missing') }}",
    "noblock.html.j2": "x",
}


@pytest.fixture()
def tdir(tmp_path):
    return _write(tmp_path, TEMPLATES)


def test_attributes_scores_reasons_recommendations(tdir):
    recs = [{"rank": 1, "product_id": "SKU-00001", "name": "Boots", "price": "59.5", "score": 0.9},
            {"rank": 2, "product_id": "SKU-00002", "name": "Socks", "price": 4, "score": 0.4}]
    m = render("offer", {"customer_id": "c1", "first_name": "Ann"}, templates_dir=tdir,
               scores={"lead_score": {"score": 0.71, "decile": 9, "reasons": ["opens our emails", "many past orders"]}},
               recommendations=recs)
    assert m.subject == "Ann, picked for you"
    assert "1. Boots $59.50\n2. Socks $4.00\n" in m.text
    assert "lead decile 9: opens our emails; many past orders" in m.text
    assert "Welcome back." in m.text and "<li>Boots</li><li>Socks</li>" in m.html


def test_block_chosen_by_branch_then_segment_then_default(tdir):
    r = Renderer(tdir)
    p = {"customer_id": "c1", "first_name": "Ann"}
    assert "You opened" in r.render("offer", p, segments=["rfm_champions"], branch="opened").text
    assert "champion, Ann" in r.render("offer", p, segments=["win_back_lapsed", "rfm_champions"], branch="other").text
    assert "Welcome back." in r.render("offer", p, segments=["win_back_lapsed"]).text
    # The HTML variant of the block is used in the HTML part, rendered (not escaped twice).
    assert "<p>Thanks for being a champion, Ann.</p>" in r.render("offer", p, segments=["rfm_champions"]).html


def test_missing_field_names_template_and_field(tdir):
    with pytest.raises(TemplateFieldError) as e:
        render("strict", {"customer_id": "c7", "first_name": None, "city": "Austin"}, templates_dir=tdir)
    assert (e.value.template, e.value.field, e.value.customer_id) == ("strict.subject.j2", "first_name", "c7")
    assert "strict.subject.j2" in str(e.value) and "'first_name'" in str(e.value) and "default" in str(e.value)
    with pytest.raises(TemplateFieldError, match=r"strict.txt.j2: field 'city' is missing for customer c7"):
        render("strict", {"customer_id": "c7", "first_name": "Ann", "city": float("nan")}, templates_dir=tdir)
    with pytest.raises(TemplateFieldError, match=r"noblock.txt.j2: field \"block 'missing'\""):
        render("noblock", {"customer_id": "c7"}, templates_dir=tdir)
    with pytest.raises(FileNotFoundError, match="nosuch.subject.j2"):
        render("nosuch", {"customer_id": "c7"}, templates_dir=tdir)


def test_fields_and_check_for_validation(tdir):
    r = Renderer(tdir)
    assert r.fields("offer") == {"first_name", "recommendations", "scores"}
    assert r.fields("strict") == {"first_name", "city"}
    assert r.has_template("offer") and not r.has_template("nosuch")
    (tdir / "broken.subject.j2").write_text("{% if %}")
    (tdir / "broken.txt.j2").write_text("x")
    (tdir / "broken.html.j2").write_text("x")
    from jinja2 import TemplateSyntaxError
    with pytest.raises(TemplateSyntaxError) as e:
        r.check("broken")
    assert e.value.name == "broken.subject.j2" and e.value.lineno == 1


def test_sandbox_blocks_unsafe_attribute_access(tmp_path):
    _write(tmp_path, {"evil.subject.j2": "{{ ''.__class__.__mro__ }}", "evil.txt.j2": "x", "evil.html.j2": "x"})
    from jinja2.exceptions import SecurityError, UndefinedError
    with pytest.raises((SecurityError, UndefinedError, TemplateFieldError)):
        render("evil", {"customer_id": "c1"}, templates_dir=tmp_path)


def test_bulk_from_warehouse_collects_errors_per_person(tdir):
    con = aw.warehouse(people=6)
    con.execute("UPDATE marts.dim_customers SET first_name = NULL WHERE customer_id = 'c2'")
    con.execute("""CREATE SCHEMA ml; CREATE TABLE ml.scores AS SELECT 'c1' AS customer_id, 'lead_score' AS model,
                   0.8 AS score, 10 AS decile, 'opens our emails' AS reason_1, NULL AS reason_2, NULL AS reason_3""")
    con.execute("""CREATE TABLE ml.recommendations AS SELECT * FROM (VALUES ('c1', 2, 'SKU-2', 0.5, 'v1'),
                   ('c1', 1, 'SKU-1', 0.9, 'v1')) t(customer_id, rank, product_id, score, model_version)""")
    inputs = load_inputs(con)  # no products table: recommendations still come, without names
    assert list(inputs["recommendations"].product_id) == ["SKU-1", "SKU-2"]
    out = render_bulk("offer", inputs["people"], templates_dir=tdir, scores=inputs["scores"],
                      recommendations=inputs["recommendations"].assign(name=["One", "Two"], price=[5, 6]),
                      memberships=pd.DataFrame({"customer_id": ["c3"], "segment": ["rfm_champions"]}))
    assert len(out) == 6 and out.error.isna().all(), out.error.dropna().tolist()
    c1 = out.set_index("customer_id").loc["c1"]
    assert "lead decile 10: opens our emails" in c1.text and "1. One" in c1.text and "2. Two" in c1.text
    assert "champion, Ann3" in out.set_index("customer_id").loc["c3"].text
    strict = render_bulk("strict", inputs["people"], templates_dir=tdir)
    bad = strict[strict.error.notna()]
    assert list(bad.customer_id) == ["c2"] and "strict.subject.j2" in bad.error.iloc[0]
    assert strict[strict.customer_id == "c1"].subject.iloc[0] == "Ann1"
    with pytest.raises(TemplateFieldError):
        render_bulk("strict", inputs["people"], templates_dir=tdir, errors="raise")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.none(), st.text(max_size=40), st.integers(), st.floats(allow_nan=True)),
       product=st.text(max_size=30))
def test_fuzz_attribute_values_never_crash_and_html_is_escaped(tdir, name, product):
    person = {"customer_id": "c1", "first_name": name}
    m = Renderer(tdir).render("offer", person, recommendations=[{"rank": 1, "name": product, "price": "x"}])
    missing = name is None or (isinstance(name, float) and name != name)
    shown = "there" if missing else str(name)
    hi = re.search(r"<p>Hi (.*?)</p>", m.html, re.S).group(1)
    li = re.search(r"<li>(.*?)</li>", m.html, re.S).group(1)
    for part, raw in ((hi, shown), (li, product)):
        assert _html.unescape(part) == raw  # the value comes through intact ...
        assert not re.search(r"[<>\"']|&(?!(?:#\d+|[a-z]+);)", part)  # ... with every markup character escaped
    assert f"Hi {'there' if missing or not name else name}\n" in m.text  # `or` falls back on any false value; no escaping


def test_an_error_keeps_its_hint_when_the_customer_is_added(tmp_path):
    # The hint travels as a field, not re-read from the message: a block name with a parenthesis used to cut it.
    tdir = _write(tmp_path, {"odd.subject.j2": "Hi", "odd.txt.j2": "{{ block_for('a(b') }}", "odd.html.j2": "x"})
    with pytest.raises(TemplateFieldError) as e:
        render("odd", {"customer_id": "c9"}, templates_dir=tdir)
    assert e.value.customer_id == "c9" and e.value.hint == "block names are letters, digits, _ and -"
    assert str(e.value).endswith("for customer c9 (block names are letters, digits, _ and -)")
