"""The Beacon page's app without a running Airflow: who is refused, who sees personal data, what renders.
(The real auth manager and the real stack: tests/stack/test_stack.py; the browser: tests/stack/test_stack.py::test_the_beacon_page_in_a_real_browser.)"""

from __future__ import annotations

import re

from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from beacon.ui.access import for_viewer, is_personal, mask
from beacon.ui.app import create_app

SNAPSHOT = {
    "published_at": "2026-07-01T00:00:00", "warehouse_as_of": "2026-06-30T23:59:59",
    "breaker": {"open": True, "failures": ["raw_orders: expect_column_values_to_not_be_null(order_id)"],
                "warnings": []},
    "audiences": [{"name": "cart_abandoners", "description": "carts left", "owner": "crm", "channels": ["file"],
                   "priority": 50, "holdout_pct": 5.0, "size": 8, "history": [{"as_of": "2026-06-30", "size": 8}],
                   "deliveries": [{"destination": "file", "status": "succeeded", "finished_at": "2026-06-30",
                                   "members": 8, "delivered": 6, "adds": 6, "updates": 0, "removes": 0,
                                   "held_out": 1, "invalid": 0, "suppressed": {"no_consent": 1}, "message": ""}],
                   "sample": [{"customer_id": "cus_1", "email": "kristi.eaton@merrittlabs.com",
                               "entered_on": "2026-06-30", "score": 0.2,
                               "qualifying": {"first_name": "Kristi", "company_name": "Merritt Labs",
                                              "cart_adds": 1}, "reasons": ["visited the website recently"]}]}],
    "overlaps": [], "models": [], "journeys": None,
    "measurement": [{"campaign": "audience:cart_abandoners", "window_days": 14.0, "srm": {"mismatch": False},
                     "results": [{"outcome": "converted", "arm": "treatment", "binary": True, "n_arm": 950,
                                  "n_control": 50, "mean_arm": 0.12, "mean_control": 0.08, "abs_lift": 0.04,
                                  "abs_low": -0.035, "abs_high": 0.093, "rel_lift": 0.5, "rel_low": -0.3,
                                  "rel_high": 1.6, "p_value": 0.39, "significant": False,
                                  "verdict": "No clear effect: the interval includes zero."}]}],
}
JOURNEYS = [{"journey": "cart_abandonment", "version": 2, "enabled": True, "entry": "event", "in_flight": 41,
             "exits": {"goal": 3, "exit_node": 7}, "goals": 3, "goal": "order_completed",
             "nodes": [{"id": "wait_1h", "type": "wait", "next": ["reminder"], "people": 30, "sent": 0, "skipped": 0,
                        "deferred": 0},
                       {"id": "reminder", "type": "send", "next": ["done"], "people": 11, "sent": 120, "skipped": 9,
                        "deferred": 2},
                       {"id": "done", "type": "exit", "next": [], "people": 0, "sent": 0, "skipped": 0,
                        "deferred": 0}],
             "last_run": {"clock": "2026-06-30T23:59:59", "status": "succeeded"}}]

USERS = {"admin-token": ("admin", True, True), "marketer-token": ("marketer", True, False),
         "nobody-token": ("nobody", False, False)}


async def fake_user(request: Request):
    """Stands in for Airflow's get_user: the token names the user, no token is 401 (as Airflow answers)."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ") or request.cookies.get("_token")
    if not token:
        raise HTTPException(status_code=401, detail="Not authenticated")
    if token not in USERS:
        raise HTTPException(status_code=403, detail="Invalid JWT token")
    return USERS[token]


def client(snapshot=SNAPSHOT) -> TestClient:
    return TestClient(create_app(get_user=fake_user, authorize=lambda u: (u[1], u[2]), snapshot=lambda: snapshot))


def test_anonymous_and_forged_callers_are_refused_on_every_route():
    c = client()
    for path in ("/", "/api/summary"):
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer forged"}).status_code == 403
        assert c.get(path, headers={"Authorization": "Bearer nobody-token"}).status_code == 403
    page = c.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "Sign in to Airflow" in page.text and "kristi" not in page.text


def test_read_only_no_route_changes_anything():
    c = client()
    for method in ("post", "put", "patch", "delete"):
        assert getattr(c, method)("/api/summary", headers={"Authorization": "Bearer admin-token"}).status_code == 405


def test_marketers_see_personal_data_masked_admins_in_full():
    c = client()
    admin = c.get("/api/summary", headers={"Authorization": "Bearer admin-token"}).json()
    marketer = c.get("/api/summary", cookies={"_token": "marketer-token"}).json()
    a, m = admin["audiences"][0]["sample"][0], marketer["audiences"][0]["sample"][0]
    assert a["email"] == "kristi.eaton@merrittlabs.com" and m["email"] == "k•••@•••.com"
    assert m["qualifying"] == {"first_name": "K•••", "company_name": "Merritt Labs", "cart_adds": 1}
    assert marketer["measurement"] == admin["measurement"]  # statistics only: nothing to mask
    page = c.get("/", cookies={"_token": "marketer-token"})
    assert "kristi.eaton" not in page.text and "k•••@•••.com" in page.text and "Personal data is masked" in page.text


def test_the_page_shows_each_section_and_only_existing_optional_ones():
    html = client().get("/", headers={"Authorization": "Bearer admin-token"}).text
    assert "Breaker OPEN" in html and "expect_column_values_to_not_be_null" in html
    assert 'data-audience="cart_abandoners"' in html and "no_consent: 1" in html and "<svg" in html
    assert 'id="measurement"' in html and 'id="journeys"' not in html  # no journeys run yet: no section
    # Results: each arm's lift with its interval (a bar around zero) and the plain sentence.
    assert 'data-campaign="audience:cart_abandoners"' in html and "+4.00 pts [-3.50 pts, +9.30 pts]" in html
    assert 'class="interval"' in html and "No clear effect" in html and "sample ratio mismatch" not in html
    flows = client(snapshot={**SNAPSHOT, "journeys": JOURNEYS, "measurement": None}).get(
        "/", headers={"Authorization": "Bearer admin-token"}).text
    assert 'id="journeys"' in flows and 'id="measurement"' not in flows
    assert 'data-journey="cart_abandonment"' in flows and "41 in flight" in flows and "3 reached" in flows
    row = flows[flows.index("<code>reminder</code>"):flows.index("<code>done</code>")]
    cells = [re.sub(r"<[^>]+>", "", x).strip() for x in row.split("</td>")[:-1]]
    assert cells == ["reminder", "send", "done", "11", "120", "9", "2"]
    assert "goal: 3, exit_node: 7" in flows and "succeeded" in flows
    empty = client(snapshot=None)
    assert "Nothing published yet" in empty.get("/", headers={"Authorization": "Bearer admin-token"}).text
    assert empty.get("/api/summary", headers={"Authorization": "Bearer admin-token"}).status_code == 404


def test_masking_rules():
    assert mask(None) is None and mask("Kristi") == "K•••" and mask("x@localhost") == "x•••@•••"
    assert is_personal("email") and is_personal("billing_address") and is_personal("first_name")
    assert not is_personal("company_name") and not is_personal("audience") and not is_personal("emails_sent")
    view = for_viewer(SNAPSHOT, personal_data=False)
    assert SNAPSHOT["audiences"][0]["sample"][0]["email"].startswith("kristi")  # the snapshot itself is untouched
    assert view["personal_data"] is False


def test_a_journey_experiment_shows_its_decision_or_its_current_figures():
    arms = [{"arm": "a", "people": 540, "mean": 0.1}, {"arm": "b", "people": 530, "mean": 0.4},
            {"arm": "control", "people": 130, "mean": None}]
    decided = {"node": "test", "metric": "converted", "state": "decided", "winner": "b", "breached": {},
               "decided_at": "2026-07-01 15:00:00", "reason": "b beats every other arm on converted at 95%",
               "arms": arms}
    undecided = {**decided, "node": "subject", "state": "undecided", "winner": None, "decided_at": None,
                 "reason": "too early: decisions start at 2026-07-07T15:00:00"}
    flows = client(snapshot={**SNAPSHOT, "journeys": [{**JOURNEYS[0], "experiments": [decided, undecided]}]}).get(
        "/", headers={"Authorization": "Bearer admin-token"}).text
    won = flows[flows.index('data-node="test"'):flows.index('data-node="subject"')]
    assert 'data-state="decided"' in won and "winner b" in won and "decided 2026-07-01 15:00:00" in won
    cells = [re.sub(r"<[^>]+>", "", x).strip() for x in won[won.index("<td>b</td>"):].split("</td>")[:3]]
    assert cells == ["b", "530", "40.00%"]
    waiting = flows[flows.index('data-node="subject"'):]
    assert "undecided." in waiting and "too early" in waiting and "winner" not in waiting.split("</div>")[0]
