-- Registered for a webinar in the last N days (var webinar_days): follow up with the recording.
with registrations as (
    select customer_id, max(event_at) as registered_at, max_by(webinar_id, (event_at, webinar_id)) as webinar_id,
           count(*) as registrations
    from {{ ref('fct_web_events') }}, (select as_of_at from {{ ref('warehouse_as_of') }}) a
    where event_name = 'webinar_registered' and customer_id is not null
      and event_at > a.as_of_at - {{ days_interval(var('webinar_days', 30)) }}
    group by customer_id
),

customers as (
    select customer_id, email, first_name from {{ ref('dim_customers') }} where is_email_valid
),

final as (
    select c.customer_id, c.email, c.first_name, r.webinar_id, r.registered_at, r.registrations
    from registrations r
    join customers c using (customer_id)
)

select * from final
