"""Governance before every send: consent, global suppression, priority, frequency cap and holdout.

Each member of an audience gets at most one reason not to be sent, decided in this order (the first
that applies wins, so counters add up): erased, complained, hard_bounced, unsubscribed, opted_out,
no_consent, global_control (the program-wide control group, beacon.measure.global_control), invalid,
lower_priority, frequency_cap; a member with no reason is then either held out (the audience's control
group) or sendable. `erased` also covers privacy requests from the moment they are accepted: a member whose
customer id, e-mail or phone hashes to a blocked hash (beacon.tombstones: the blocked files and
privacy.tombstones) is not sent to (docs/privacy.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from beacon.activation import preferences
from beacon.audiences import CHANNELS, Audience
from beacon.config import settings
from beacon.emails import macro_sql
from beacon.measure.global_control import global_control_sql, global_period
from beacon.tombstones import prepare_match, sql_blocked
from beacon.warehouse import sql_literal, table_exists

log = logging.getLogger(__name__)

# Global suppression: applies to every channel.
SUPPRESSION_REASONS = ("erased", "complained", "hard_bounced", "unsubscribed")
CONSENT_REASONS = ("opted_out", "no_consent")
REASON_ORDER = (*SUPPRESSION_REASONS, *CONSENT_REASONS, "global_control", "invalid", "lower_priority", "frequency_cap")
# Customer attributes a destination may map; segment columns of the same name win.
CUSTOMER_FIELDS = ("email", "phone_e164", "first_name", "last_name", "city", "state", "postal_code")
WINDOW_DAYS = 7


@dataclass(frozen=True)
class ChannelPolicy:
    """How a delivery channel is governed (defaults below; a destination's connection may override them)."""

    consent_channel: str  # which marts.dim_consent channel this channel needs
    opt_in_required: bool  # True: no record = no send; False: only an opt-out blocks
    counts_as_message: bool  # counted against (and checked by) the frequency cap
    exclusive: bool = True  # priority arbitration: one audience per person on this channel
    frequency_cap: int = field(default_factory=lambda: settings().frequency_cap)


# The house policy per channel (beacon.audiences.CHANNELS): files and ads carry emails that are mailed or
# matched, so they need opt-in. Built per call: the frequency cap is read from the settings each time.
_POLICIES = {
    "email": {"consent_channel": "email", "opt_in_required": True, "counts_as_message": True},
    "file": {"consent_channel": "email", "opt_in_required": True, "counts_as_message": False},
    "webhook": {"consent_channel": "email", "opt_in_required": False, "counts_as_message": False},
    "ads": {"consent_channel": "ads", "opt_in_required": True, "counts_as_message": False},
    "sms": {"consent_channel": "sms", "opt_in_required": True, "counts_as_message": True},
}
if set(_POLICIES) != set(CHANNELS):  # a channel added to the audience contract needs a policy here
    raise ImportError(f"governance policies {sorted(_POLICIES)} do not match the channels {sorted(CHANNELS)}")


def default_policy(channel: str) -> ChannelPolicy:
    """The house policy for one delivery channel."""
    return ChannelPolicy(**_POLICIES[channel])


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Activation's own tables: sync state, sync log, run summaries, control group, manual suppressions."""
    con.execute("CREATE SCHEMA IF NOT EXISTS activation")
    con.execute("""CREATE TABLE IF NOT EXISTS activation.sync_state (
        audience VARCHAR, destination VARCHAR, customer_id VARCHAR, row_hash VARCHAR, version INTEGER,
        present BOOLEAN, run_id VARCHAR, synced_at TIMESTAMP, payload VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS activation.sync_log (
        run_id VARCHAR, audience VARCHAR, destination VARCHAR, channel VARCHAR, customer_id VARCHAR,
        operation VARCHAR, status VARCHAR, reason VARCHAR, error VARCHAR, attempt INTEGER,
        idempotency_key VARCHAR, as_of TIMESTAMP, logged_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS activation.sync_runs (
        run_id VARCHAR, audience VARCHAR, destination VARCHAR, channel VARCHAR, mode VARCHAR, as_of TIMESTAMP,
        started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR, message VARCHAR, source_rows INTEGER,
        adds INTEGER, updates INTEGER, removes INTEGER, unchanged INTEGER, invalid INTEGER, failed INTEGER,
        delivered INTEGER, held_out INTEGER, suppressed JSON)""")
    con.execute("""CREATE TABLE IF NOT EXISTS activation.control_group (
        audience VARCHAR, customer_id VARCHAR, first_held_out_at TIMESTAMP, run_id VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS activation.suppression_list (
        customer_id VARCHAR, email VARCHAR, reason VARCHAR, recorded_at TIMESTAMP, source VARCHAR)""")


def add_suppression(con: duckdb.DuckDBPyConnection, reason: str, recorded_at, customer_id: str | None = None,
                    email: str | None = None, source: str = "manual") -> None:
    """Suppress a person everywhere (e.g. an erasure request); matched on customer id or email."""
    if reason not in SUPPRESSION_REASONS:
        raise ValueError(f"suppression reason must be one of {SUPPRESSION_REASONS}, not {reason!r}")
    if not customer_id and not email:
        raise ValueError("a suppression needs a customer_id or an email")
    ensure_tables(con)
    con.execute(f"INSERT INTO activation.suppression_list VALUES (?, {macro_sql('normalized_email', '?')}, ?, ?, ?)",
                [customer_id, email, reason, recorded_at, source])


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {relation}").fetchall()]


def governed(con: duckdb.DuckDBPyConnection, audience: Audience, audiences: list[Audience], channel: str,
             as_of, policy: ChannelPolicy | None = None, required_any: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every member of `audience` with the mapped-field candidates, a reason not to send (or NULL) and the holdout flag."""
    sql, params = governed_query(con, audience, audiences, channel, as_of, policy, required_any)
    return con.execute(f"SELECT * FROM ({sql}) ORDER BY customer_id", params).df()


def governed_query(con: duckdb.DuckDBPyConnection, audience: Audience, audiences: list[Audience], channel: str,
                   as_of, policy: ChannelPolicy | None = None, required_any: tuple[str, ...] = ()) -> tuple[str, dict]:
    """The governance query and its parameters (the sync engine materializes it inside DuckDB).

    `required_any`: the destination needs at least one of these fields (e.g. email or phone); a member
    without any is `invalid`."""
    policy = policy or default_policy(channel)
    ensure_tables(con)
    # Unsubscribes written by the service since the last ingest count now, not after the next load.
    preferences.absorb_pending(con, settings().landing_dir)
    # Privacy requests count from their acceptance: the blocked files and the tombstones (keyed hashes).
    privacy = prepare_match(con, settings().privacy_key, settings().landing_dir,
                            table_exists(con, "privacy", "tombstones")) > 0
    seg_cols = _columns(con, audience.relation)
    cust = ", ".join(f"cu.{f}" for f in CUSTOMER_FIELDS if f not in seg_cols)
    email_expr = "s.email" if "email" in seg_cols else "cu.email"
    # The current lead score, unless the segment carries its own.
    score_cols = "".join(f"sc.{src} AS {col}, " for col, src in (("lead_score", "score"), ("lead_decile", "decile"))
                         if col not in seg_cols)
    cap = policy.frequency_cap if policy.counts_as_message else None
    return f"""
        WITH params AS (SELECT $as_of::TIMESTAMP AS as_of),
        {_shared_email_events(con, as_of, audience.topic) or _email_events_cte(con)},
        email_opt_in AS (
            SELECT customer_id, recorded_at FROM marts.dim_consent WHERE channel = 'email' AND status = 'opt_in'),
        higher AS ({_higher_sql(con, audience, audiences, channel, policy)}),
        {_preference_ctes(audiences)},
        {_suppression_ctes(audience.relation, email_expr)},
        recent AS (
            SELECT customer_id, count(*) AS n FROM activation.sync_log
            WHERE status = 'delivered' AND operation IN ('add', 'update') AND channel IN (SELECT unnest($message_channels))
              AND as_of > (SELECT as_of FROM params) - INTERVAL {WINDOW_DAYS} DAY
              AND as_of <= (SELECT as_of FROM params)
            GROUP BY 1),
        base AS (
            SELECT s.*, {cust + ',' if cust else ''} {score_cols}
                {_reason_sql(seg_cols, email_expr, required_any, privacy)} AS reason,
                -- Stable hash of (audience, customer): the same person is always in or out of the control group.
                (('0x' || substr(md5($audience || ':' || s.customer_id), 1, 8))::UBIGINT % 10000) / 100.0
                    < $holdout_pct AS held_out
            FROM {audience.relation} s
            LEFT JOIN marts.dim_customers cu ON cu.customer_id = s.customer_id
            LEFT JOIN marts.dim_consent c ON c.customer_id = s.customer_id AND c.channel = $consent_channel
            LEFT JOIN email_events ee ON ee.customer_id = s.customer_id
            LEFT JOIN email_opt_in oi ON oi.customer_id = s.customer_id
            LEFT JOIN recent r ON r.customer_id = s.customer_id
            LEFT JOIN manual m ON m.customer_id = s.customer_id
            {_scores_join(con)})
        SELECT * REPLACE (held_out AND reason IS NULL AS held_out) FROM base
    """, {"as_of": str(as_of), "message_channels": sorted(_message_channels(policy, channel)), "opt_in_required":
          policy.opt_in_required, "cap": cap, "audience": audience.name, "holdout_pct": audience.holdout_pct,
          "consent_channel": policy.consent_channel, "global_pct": settings().global_control_pct,
          "global_period": global_period(as_of), "topic": audience.topic}


# (connection, clock, topic) -> the temp table holding `email_events` for them, while `shared_email_events` runs.
_SHARED: dict[tuple[int, str, str], str] = {}


@contextmanager
def shared_email_events(con: duckdb.DuckDBPyConnection, as_of, topics) -> Iterator[None]:
    """Within the block, governance at clock `as_of` reads each topic's `email_events` from a temp table computed
    once here, instead of aggregating every e-mail event of the warehouse for each audience: for a run that governs
    several audiences at one clock while nothing writes e-mail events (`activate_destination`). The rows are the
    CTE's own. When they cannot be computed (no e-mail events yet), each audience computes its own, as before."""
    made: list[tuple[tuple[int, str, str], str]] = []
    try:
        for i, topic in enumerate(sorted(set(topics))):
            rel = f"_gov_email_events_{i}"
            try:
                con.execute(f"""CREATE OR REPLACE TEMP TABLE {rel} AS
                    WITH params AS (SELECT $as_of::TIMESTAMP AS as_of), {_email_events_cte(con)}
                    SELECT * FROM email_events""", {"as_of": str(as_of), "topic": topic})
            except duckdb.Error:
                log.debug("e-mail aggregates not shared for topic %s", topic, exc_info=True)
                continue
            made.append(((id(con), str(as_of), topic), rel))
            _SHARED[made[-1][0]] = rel
        yield
    finally:
        for key, rel in made:
            _SHARED.pop(key, None)
            con.execute(f"DROP TABLE IF EXISTS {rel}")


def _shared_email_events(con: duckdb.DuckDBPyConnection, as_of, topic: str) -> str | None:
    rel = _SHARED.get((id(con), str(as_of), topic))
    return f"email_events AS (SELECT * FROM {rel})" if rel else None


def _email_events_cte(con: duckdb.DuckDBPyConnection) -> str:
    """`email_events`: per person, complaint, hard bounce, last unsubscribe and a standing topic opt-out."""
    # Warehouses built before topics existed have no topic column in fct_email_events.
    ev_topic = "topic" if "topic" in _columns(con, "marts.fct_email_events") else "NULL::VARCHAR"
    return f"""email_events AS (
            SELECT customer_id,
                bool_or(event_name = 'complaint') AS complained,
                bool_or(event_name = 'bounce' AND bounce_type = 'hard') AS hard_bounced,
                max(event_at) FILTER (WHERE event_name = 'unsubscribe') AS last_unsubscribe,
                -- A subscription-group (topic) opt-out stands until a later re-subscribe to that group.
                coalesce(max(event_at) FILTER (WHERE event_name = 'group_unsubscribe' AND {ev_topic} = $topic)
                    > coalesce(max(event_at) FILTER (WHERE event_name = 'group_resubscribe' AND {ev_topic} = $topic),
                               TIMESTAMP '1900-01-01'), false) AS group_unsubscribed
            FROM marts.fct_email_events WHERE customer_id IS NOT NULL AND event_at <= (SELECT as_of FROM params) GROUP BY 1)"""


def _higher_sql(con: duckdb.DuckDBPyConnection, audience: Audience, audiences: list[Audience], channel: str,
                policy: ChannelPolicy) -> str:
    """Members of higher-priority audiences on the same channel that exist in the warehouse (ties broken by
    name); none unless the channel's policy is exclusive."""
    higher = [a for a in audiences if a.name != audience.name and channel in a.channels
              and (a.priority > audience.priority or (a.priority == audience.priority and a.name < audience.name))]
    higher = [a for a in higher if table_exists(con, *a.relation.split("."))] if policy.exclusive else []
    return (" UNION ".join(f"SELECT customer_id FROM {a.relation}" for a in higher)
            or "SELECT NULL::VARCHAR AS customer_id WHERE false")


def _preference_ctes(audiences: list[Audience]) -> str:
    """`topics`, `pref_latest`, `pref_out`: the preference-centre and one-click opt-outs that apply to $topic."""
    topic_rows = ", ".join(f"({sql_literal(a.name)}, {sql_literal(a.topic)})" for a in audiences) or "(NULL, NULL)"
    return f"""-- Preference-centre and one-click records (activation.preferences): the latest per person and topic
        -- wins; a record without a topic covers the whole channel; a one-click record has its audience's topic.
        topics AS (SELECT * FROM (VALUES {topic_rows}) t(audience, topic)),
        pref_latest AS (
            SELECT * FROM (
                SELECT p.*, CASE WHEN p.topic IS NOT NULL THEN p.topic ELSE t.topic END AS eff_topic
                FROM activation.preferences p LEFT JOIN topics t ON t.audience = p.audience
                WHERE p.channel = $consent_channel)
            QUALIFY row_number() OVER (PARTITION BY coalesce(customer_id, email, phone), eff_topic
                                       ORDER BY recorded_at DESC, consent_id DESC) = 1),
        pref_out AS (
            SELECT customer_id, email, phone FROM pref_latest
            WHERE status = 'opt_out' AND (eff_topic IS NULL OR eff_topic = $topic))"""


def _suppression_ctes(relation: str, email_expr: str) -> str:
    """`listed`, `manual`: the suppression-list reasons of each member of `relation`."""
    return f"""-- Manual and erasure suppressions, matched on the customer id or on the (normalized) email.
        listed AS (
            SELECT s.customer_id, x.reason FROM {relation} s
            JOIN activation.suppression_list x ON x.customer_id = s.customer_id
            UNION ALL
            SELECT s.customer_id, x.reason FROM {relation} s
            LEFT JOIN marts.dim_customers cu ON cu.customer_id = s.customer_id
            JOIN activation.suppression_list x ON x.email = {macro_sql('normalized_email', email_expr)}),
        manual AS (
            SELECT customer_id, bool_or(reason = 'erased') AS erased, bool_or(reason = 'complained') AS complained,
                bool_or(reason = 'hard_bounced') AS hard_bounced, bool_or(reason = 'unsubscribed') AS unsubscribed
            FROM listed GROUP BY 1)"""


def _reason_sql(seg_cols: list[str], email_expr: str, required_any: tuple[str, ...], privacy: bool = False) -> str:
    """The first reason not to send, in REASON_ORDER (NULL: send). `privacy`: match the members against the
    keyed hashes of privacy requests (beacon.tombstones.prepare_match ran on the connection)."""
    phone_expr = "s.phone_e164" if "phone_e164" in seg_cols else "cu.phone_e164"
    blocked = sql_blocked([("id", "s.customer_id"), ("email", email_expr), ("phone", phone_expr)]) \
        if privacy else "false"
    invalid = (" AND ".join(f"{'s' if f in seg_cols else 'cu'}.{f} IS NULL" for f in required_any)
               if required_any else "false")
    return f"""CASE
                    WHEN m.erased OR {blocked} THEN 'erased'
                    WHEN ee.complained OR m.complained THEN 'complained'
                    WHEN ee.hard_bounced OR m.hard_bounced THEN 'hard_bounced'
                    -- An unsubscribe stands until a later email opt-in.
                    WHEN (ee.last_unsubscribe IS NOT NULL AND (oi.recorded_at IS NULL OR oi.recorded_at <= ee.last_unsubscribe))
                         OR m.unsubscribed OR ee.group_unsubscribed
                         OR s.customer_id IN (SELECT customer_id FROM pref_out WHERE customer_id IS NOT NULL)
                         OR {macro_sql('normalized_email', email_expr)} IN (SELECT email FROM pref_out WHERE email IS NOT NULL)
                         OR {phone_expr} IN (SELECT phone FROM pref_out WHERE phone IS NOT NULL)
                         THEN 'unsubscribed'
                    WHEN c.status = 'opt_out' THEN 'opted_out'
                    WHEN $opt_in_required AND c.status IS DISTINCT FROM 'opt_in' THEN 'no_consent'
                    -- The global control group gets no marketing at all (measures the whole program).
                    WHEN {global_control_sql('s.customer_id', '$global_pct', '$global_period')} THEN 'global_control'
                    WHEN {invalid} THEN 'invalid'
                    WHEN s.customer_id IN (SELECT customer_id FROM higher) THEN 'lower_priority'
                    WHEN $cap IS NOT NULL AND coalesce(r.n, 0) >= $cap THEN 'frequency_cap'
                END"""


def _scores_join(con: duckdb.DuckDBPyConnection) -> str:
    """The lead score join, or a join to nothing where ml.scores does not exist yet."""
    if table_exists(con, "ml", "scores"):
        return "LEFT JOIN ml.scores sc ON sc.customer_id = s.customer_id AND sc.model = 'lead_score'"
    return ("LEFT JOIN (SELECT NULL::VARCHAR AS customer_id, NULL::DOUBLE AS score, NULL::INTEGER AS decile) sc "
            "ON false")


def _message_channels(policy: ChannelPolicy, channel: str) -> set[str]:
    """Channels whose deliveries count as marketing messages (email always; this one if its policy says so)."""
    return {"email"} | ({channel} if policy.counts_as_message else set())
