-- Outcomes of each assignment within var('measurement_window_days') after exposure, by assigned group (intent to
-- treat). The definition is the macro `exposure_outcomes` (macros/measurement_outcomes.sql), which the campaign
-- report and `beacon measure lift` run too; the window is BEACON_MEASUREMENT_WINDOW_DAYS (see dbt_project.yml).
with outcomes as (
    {{ exposure_outcomes(ref('campaign_exposures'), ref('campaign_outcome_events'),
                         var('measurement_window_days')) }}
),

final as (
    select
        campaign, customer_id, arm, sent, channel, exposed_at, window_days, converted, orders, revenue, clicks,
        form_submits, other_events, prior_orders_90d, prior_revenue_90d, prior_visits_90d
    from outcomes
)

select * from final
