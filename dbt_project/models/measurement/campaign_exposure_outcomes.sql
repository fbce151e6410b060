-- Outcomes of each assignment within var('measurement_window_days') after exposure, by assigned group
-- (intent to treat: a treated person whose message failed still counts as treated). Orders count for every
-- campaign whose window holds them: the lift compares arms of one campaign, so nothing is double counted there
-- (the last-touch view in beacon.measure.warehouse credits each order once across campaigns).
{%- set window = var('measurement_window_days', 7) %}
with exposures as (
    select * from {{ ref('campaign_exposures') }}
),

events as (
    select * from {{ ref('campaign_outcome_events') }}
),

in_window as (
    select x.campaign, x.customer_id, e.event_type, e.revenue
    from exposures x
    join events e on e.customer_id = x.customer_id
        and e.occurred_at > x.exposed_at
        and e.occurred_at <= x.exposed_at + interval {{ window }} day
),

counts as (
    select
        campaign,
        customer_id,
        count(*) filter (where event_type = 'order') as orders,
        coalesce(sum(revenue) filter (where event_type = 'order'), 0) as revenue,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'form_submitted') as form_submits,
        count(*) filter (where event_type not in ('order', 'click', 'form_submitted')) as other_events
    from in_window
    group by campaign, customer_id
),

final as (
    select
        x.campaign, x.customer_id, x.arm, x.sent, x.channel, x.exposed_at, {{ window }} as window_days,
        (coalesce(c.orders, 0) > 0)::integer as converted,
        coalesce(c.orders, 0) as orders,
        coalesce(c.revenue, 0) as revenue,
        coalesce(c.clicks, 0) as clicks,
        coalesce(c.form_submits, 0) as form_submits,
        coalesce(c.other_events, 0) as other_events,
        x.prior_orders_90d, x.prior_revenue_90d, x.prior_visits_90d
    from exposures x
    left join counts c on c.campaign = x.campaign and c.customer_id = x.customer_id
)

select * from final
