"""The engagement model: deterministic, control untouched by effects, realized lift matches the planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beacon.generate.engagement import (
    Effect,
    EffectBook,
    randomize,
    read_truth,
    respond,
    simulate_people,
    true_effects,
    write_truth,
)

BOOK = EffectBook({"audience:x": {"treatment": Effect(conversion=0.08, heterogeneity=1.0)}})


def _world(n=3000, seed=5):
    people = simulate_people(n, seed)
    return people, randomize(people, "audience:x", seed, "2026-07-01 06:00", {"treatment": 0.5, "control": 0.5})


def _converted(exposures, events, days=7.0):
    orders = events[events.event_type == "order"].merge(exposures[["customer_id", "exposed_at", "arm"]], on="customer_id")
    hit = orders[(orders.occurred_at > orders.exposed_at)
                 & (orders.occurred_at <= orders.exposed_at + pd.Timedelta(days=days))]
    return exposures.assign(converted=exposures.customer_id.isin(hit.customer_id))


def test_same_seed_same_events_whatever_the_row_order():
    people, exp = _world()
    a = respond(exp, people, seed=1, effects=BOOK)
    b = respond(exp.sample(frac=1, random_state=3), people.sample(frac=1, random_state=4), seed=1, effects=BOOK)
    pd.testing.assert_frame_equal(a, b)
    assert set(a.event_type) == {"open", "click", "order"}
    assert str(a.occurred_at.dt.tz) == "UTC"


def test_control_people_never_open_or_get_nudged():
    people, exp = _world()
    none = respond(exp, people, seed=2, effects=EffectBook())
    some = respond(exp, people, seed=2, effects=BOOK)
    ctrl = set(exp.customer_id[exp.arm == "control"])
    # The planted effect changes treatment orders only: control's events are the same with or without it.
    pd.testing.assert_frame_equal(none[none.customer_id.isin(ctrl)].reset_index(drop=True),
                                  some[some.customer_id.isin(ctrl)].reset_index(drop=True))
    assert not some[some.customer_id.isin(ctrl) & some.event_type.isin(["open", "click"])].size
    assert len(some[~some.customer_id.isin(ctrl) & (some.event_type == "order")]) > \
        len(none[~none.customer_id.isin(ctrl) & (none.event_type == "order")])


def test_realized_lift_is_near_the_truth():
    people, exp = _world(n=20000, seed=9)
    ev = respond(exp, people, seed=9, effects=BOOK)
    conv = _converted(exp, ev)
    rates = conv.groupby("arm").converted.mean()
    truth = true_effects(exp, people, BOOK, window_days=7).set_index("arm")
    se = np.sqrt(sum(r * (1 - r) / (conv.arm == a).sum() for a, r in rates.items()))
    observed = rates["treatment"] - rates["control"]
    # Within 4 standard errors of the planted effect, and the effect is real (not zero).
    assert abs(observed - truth.loc["treatment", "abs_lift"]) < 4 * se
    assert truth.loc["treatment", "abs_lift"] > 4 * se


def test_heterogeneity_leans_to_engaged_low_intent_people():
    people, exp = _world(n=2000)
    flat = EffectBook({"audience:x": {"treatment": Effect(conversion=0.08)}})
    t_flat = true_effects(exp, people, flat).set_index("arm").loc["treatment", "abs_lift"]
    persuadable = people[(people.engagement - people.intent) > 1]
    sub = exp[exp.customer_id.isin(persuadable.customer_id)]
    t_sub = true_effects(sub, people, BOOK).set_index("arm").loc["treatment", "abs_lift"]
    assert t_sub > 1.3 * t_flat


def test_truth_round_trips_through_the_truth_folder(tmp_path):
    people, exp = _world(n=500)
    truth = true_effects(exp, people, BOOK)
    write_truth(tmp_path / "truth" / "2026-07-01", truth, BOOK)
    back = read_truth(tmp_path)
    assert back.drop(columns="truth_file").equals(truth)
    assert EffectBook.from_dict(BOOK.to_dict()) == BOOK


def test_bad_input_names_the_missing_column():
    people, exp = _world(n=50)
    with pytest.raises(ValueError, match="exposed_at"):
        respond(exp.drop(columns="exposed_at"), people, seed=1, effects=BOOK)
    with pytest.raises(ValueError, match="not in people"):
        respond(exp.assign(customer_id="nobody"), people, seed=1, effects=BOOK)


def _answers(events, exposures):
    """Each exposure's own answers: opens and clicks of its campaign, and orders (customer, time, revenue)."""
    return events[events.customer_id.isin(exposures.customer_id)].sort_values(
        ["customer_id", "occurred_at", "event_type"], kind="stable").reset_index(drop=True)


def test_keyed_draws_leave_every_answer_as_it_was_when_another_campaign_is_added():
    # The demo world draws keyed: one audience's change must not redraw the answers to every other campaign.
    people, exp = _world(n=4000, seed=6)
    book = EffectBook({"audience:x": {"treatment": Effect(conversion=0.3)}, "audience:y": {"treatment": Effect(0.3)}},
                      horizon_days=0.0)
    people = people.assign(order_rate=0.0)  # no baseline orders: every order is a nudged one
    alone = respond(exp, people, seed=3, effects=book, keyed=True)
    other = randomize(people.iloc[:1500], "audience:y", 8, "2026-07-01 09:00", {"treatment": 1.0})
    other = other[~other.customer_id.isin(exp.customer_id[exp.arm == "treatment"])]  # people x never messaged
    both = respond(pd.concat([exp, other], ignore_index=True), people, seed=3, effects=book, keyed=True)
    pd.testing.assert_frame_equal(_answers(alone, exp[exp.arm == "treatment"]),
                                  _answers(both[both.campaign.fillna("audience:x") == "audience:x"],
                                           exp[exp.arm == "treatment"]))
    assert (both.campaign == "audience:y").sum() > 0 and len(both) > len(alone)
    # Unkeyed, the same addition redraws the first campaign's answers (why the demo draws keyed).
    plain = respond(exp, people, seed=3, effects=book)
    plain_both = respond(pd.concat([exp, other], ignore_index=True), people, seed=3, effects=book)
    assert not _answers(plain, exp).equals(_answers(plain_both[plain_both.campaign.fillna("audience:x") == "audience:x"],
                                                    exp))


def test_keyed_draws_realize_the_planted_effect_and_depend_on_the_seed():
    people, exp = _world(n=20000, seed=9)
    ev = respond(exp, people, seed=9, effects=BOOK, keyed=True)
    conv = _converted(exp, ev)
    rates = conv.groupby("arm").converted.mean()
    truth = true_effects(exp, people, BOOK, window_days=7).set_index("arm")
    se = np.sqrt(sum(r * (1 - r) / (conv.arm == a).sum() for a, r in rates.items()))
    assert abs(rates["treatment"] - rates["control"] - truth.loc["treatment", "abs_lift"]) < 4 * se
    sent = exp[exp.sent]
    opens = ev[ev.event_type == "open"]
    p_open = people.set_index("customer_id").p_open.reindex(sent.customer_id).mean()
    assert abs(len(opens) / len(sent) - p_open) < 4 * np.sqrt(p_open * (1 - p_open) / len(sent))
    again = respond(exp.sample(frac=1, random_state=2), people, seed=9, effects=BOOK, keyed=True)
    pd.testing.assert_frame_equal(ev, again)
    assert not ev.equals(respond(exp, people, seed=10, effects=BOOK, keyed=True))


def test_keyed_draws_of_two_messages_at_the_same_moment_are_apart():
    people, exp = _world(n=3000, seed=4)
    sent = exp[exp.sent]
    twice = pd.concat([sent, sent], ignore_index=True)  # e.g. two nodes of one journey sending at one run
    book = EffectBook({"audience:x": {"treatment": Effect(conversion=0.5)}}, horizon_days=0.0)
    ev = respond(twice, people.assign(order_rate=0.0), seed=5, effects=book, keyed=True)
    per = ev[ev.event_type == "order"].groupby("customer_id").size()
    # Independent draws: some people got two nudged orders and many exactly one (identical draws give only 0 or 2).
    assert (per == 1).sum() > 100 and (per == 2).sum() > 0
