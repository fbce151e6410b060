"""The preference centre in headless Chromium (Debian's package): it renders without JavaScript, a person can use
it with labels alone, submitting it writes the consent records, and governance sees them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from urllib.parse import urlencode

from test_preferences import _link


def test_preference_page_renders_submits_and_records_consent(svc, browser_page):
    page = browser_page.page
    q = _link(svc.unsubscribe_secret, "c42", as_of=datetime.now(UTC).replace(tzinfo=None))
    before = {p for p in svc.files() if p.name.startswith("consent.csv.pref-")}
    page.goto(f"{svc.url}/v1/preferences?{urlencode(q)}")
    assert page.title() == "Your email preferences"
    assert page.locator("script").count() == 0  # no JavaScript needed
    # Accessible names: every control is reachable by its label, grouped under a legend.
    marketing = page.get_by_label("News and offers")
    updates = page.get_by_label("Product updates")
    assert marketing.is_checked() and updates.is_checked()
    assert page.locator("fieldset legend").all_inner_texts() == ["Topics I want to hear about", "Channels"]
    marketing.uncheck()
    page.get_by_label("Stop all Text messages (SMS)").check()
    page.get_by_role("button", name="Save my preferences").click()
    page.wait_for_load_state()
    assert page.title() == "Preferences saved"
    assert page.get_by_role("status").is_visible()
    assert browser_page.console_errors == [] and browser_page.failed_requests == []
    new = [p for p in svc.files() if p.name.startswith("consent.csv.pref-") and p not in before]
    assert len(new) == 1
    rows = list(csv.DictReader(io.StringIO(new[0].read_text())))
    got = {(r["channel"], r["topic"], r["status"]) for r in rows}
    assert got == {("email", "marketing", "opt_out"), ("email", "product_updates", "opt_in"), ("sms", "", "opt_out")}
    assert all(r["customer_id"] == "c42" and r["source"] == "preference-centre" and r["recorded_at"] for r in rows)
