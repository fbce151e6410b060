"""The template context of chosen people on a warehouse without the ML tables yet (a new deployment)."""

from __future__ import annotations

from beacon.personalize.render import load_inputs


def test_chosen_people_without_scores_or_recommendations_yet():
    from tests.support import activation_world as aw

    con = aw.warehouse(people=4)  # no ml.scores, no ml.recommendations, no products
    inputs = load_inputs(con, ["c1", "c3"])
    assert sorted(inputs["people"].customer_id) == ["c1", "c3"]
    assert inputs["people"].set_index("customer_id").loc["c1", "time_zone"] == "America/Chicago"
    assert inputs["scores"].empty and inputs["recommendations"].empty
    con.register("_after", inputs["people"])  # the connection is still usable for registering frames
    assert con.execute("SELECT count(*) FROM _after").fetchall()[0][0] == 2
