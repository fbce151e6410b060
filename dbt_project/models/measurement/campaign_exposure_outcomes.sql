-- Outcomes of each assignment within var('measurement_window_days') after exposure, by assigned group (intent to
-- treat). The definition is the macro `exposure_outcomes` (macros/measurement_outcomes.sql), which the campaign
-- report and `beacon measure lift` run too; the window is BEACON_MEASUREMENT_WINDOW_DAYS (see dbt_project.yml).
-- Incremental by exposure day, following campaign_exposures (macros/measurement_incremental.sql): a run rebuilds
-- the exposure days campaign_exposures rebuilt since (their `_facts_seq` differs from the one kept here), which
-- are the days whose window or covariates a changed input can reach; a full refresh gives the same rows.
{{ day_partitioned('exposed_date') }}
with
{%- if is_incremental() %}
{{ measurement_followed_days(ref('campaign_exposures')) }},
{%- endif %}

exposures as (
    select * from {{ ref('campaign_exposures') }}
    {%- if is_incremental() %}
    where exposed_date in (select day from rebuilt_days)
    {%- endif %}
),

outcomes as (
    {{ exposure_outcomes('exposures', ref('campaign_outcome_events'), var('measurement_window_days')) }}
),

final as (
    select
        campaign, customer_id, arm, sent, channel, exposed_at, window_days, converted, orders, revenue, clicks,
        form_submits, other_events, prior_orders_90d, prior_revenue_90d, prior_visits_90d, exposed_date, _facts_seq
    from outcomes
)

select * from final
