-- One row per customer: what journeys, personalization and the offers snapshot read of a person.
-- Every golden attribute of dim_customers as is, the current lead points, the computed lifecycle stage
-- and the IANA time zone of the customer's state (seed state_time_zones). A customer with no state, or
-- a state the seed does not list, gets UTC: local-time rules (quiet hours, windows, best time) then run
-- on UTC for that person.
with customers as (
    select * from {{ ref('dim_customers') }}
),

points as (
    select customer_id, lead_points from {{ ref('customer_lead_points') }}
),

lifecycle as (
    select customer_id, lifecycle_stage from {{ ref('customer_lifecycle') }}
),

zones as (
    select state, time_zone from {{ ref('state_time_zones') }}
),

final as (
    select
        c.*,
        coalesce(p.lead_points, 0) as lead_points,
        l.lifecycle_stage,
        coalesce(z.time_zone, 'UTC') as time_zone
    from customers c
    left join points p on p.customer_id = c.customer_id
    left join lifecycle l on l.customer_id = c.customer_id
    left join zones z on z.state = upper(trim(c.state))
)

select * from final
