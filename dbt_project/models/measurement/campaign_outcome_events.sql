-- Everything a campaign can be judged on, one row per event with its customer: completed orders (with
-- revenue), email clicks, form submits and the web events named in var('measurement_events').
{%- set extra = var('measurement_events', []) %}
with orders as (
    select customer_id, 'order' as event_type, ordered_at as occurred_at, total_amount as revenue
    from {{ ref('fct_orders') }}
    where status = 'completed' and customer_id is not null
),

clicks as (
    select customer_id, 'click' as event_type, event_at as occurred_at, 0.0 as revenue
    from {{ ref('fct_email_events') }}
    where event_name = 'click' and customer_id is not null
),

web as (
    select customer_id, event_name as event_type, event_at as occurred_at, 0.0 as revenue
    from {{ ref('fct_web_events') }}
    where customer_id is not null
        and event_name in ('form_submitted'{% for e in extra %}, '{{ e }}'{% endfor %})
),

final as (
    select * from orders
    union all
    select * from clicks
    union all
    select * from web
)

select * from final
