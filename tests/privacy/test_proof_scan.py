"""The proof's scan (beacon.privacy.scan): its cheap filter (a regular expression, in DuckDB for warehouse rows and
in Python for file lines) must never hide a row or line in which the full matcher finds a value, whatever the
text; and the matcher finds each kind of value in its usual forms."""

from __future__ import annotations

import duckdb
from hypothesis import given
from hypothesis import strategies as st

from beacon.privacy.scan import Targets, _candidate_lines, find

T = Targets(emails={"johnsmith@gmail.com": "p1", "ann.lee@x.org": "p2"}, phones={"4155550100": "p1"},
            ids={"anon-1234": "p2", "c00ab12": "p3"}, names={("ann", "lee"): "p2", ("mary", "o'neil"): "p3"})
PIECES = ["J.Ohn.Smith+promo@GoogleMail.com", "ann.lee+x@X.org", "(415) 555-0100", "+1 415 555\u00a00100", "555\n0100",
          "ANON-1234", "Ann", "Lee", '"first_name": "Ann", "last_name": "Lee"', "Mary O'Neil", "ann@x.org", "x",
          "\n", " ", ",", "c00ab12", "mary", "o'neil", "4155550100", "-", "'"]
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=10).map("".join)
CON = duckdb.connect()


def test_the_matcher_finds_each_kind_in_its_forms():
    assert find("J.Ohn.Smith+promo@GoogleMail.com", T) == {("p1", "email", "j.ohn.smith+promo@googlemail.com")}
    assert find("call (415) 555-0100", T) == {("p1", "phone", "(415) 555-0100")}
    assert find('{"first_name": "Ann", "last_name": "Lee", "id": "ANON-1234"}', T) == {
        ("p2", "name", "ann lee"), ("p2", "id", "anon-1234")}
    assert find("lee ann 555-0199 anon-12345 johnsmith@yahoo.com", T) == set()


@given(texts)
def test_the_line_filter_keeps_every_line_the_matcher_finds(text):
    wanted = {line for line in text.split("\n") if find(line, T)}
    assert wanted <= set(_candidate_lines(text, T.pattern(lines=True), CON))
    pre = T.prefilter(lines=True)  # the same filter in Python's engine keeps them too
    assert wanted <= {line for line in text.split("\n") if pre.search(line)}


@given(texts)
def test_the_row_filter_keeps_every_row_the_matcher_finds(text):
    if find(text, T):
        assert T.prefilter().search(text)
        assert CON.execute("SELECT regexp_matches(lower(?), ?)", [text, T.pattern()]).fetchone()[0]


def test_a_name_is_not_pieced_together_from_other_fields():
    # Another person's first name, then a street named like the last name: not Ann Lee.
    assert find("Ann | Smith | 1744 Lee Ave", T) == set()
    assert find("Ann | [ann, annie] | 12 Lee Street", T) == set()
    assert find("<td>Ann</td><td>Lee</td>", T) == {("p2", "name", "ann lee")}
    assert find('{"firstName": "Ann", "lastName": "Lee"}', T) == {("p2", "name", "ann lee")}
