-- New email subscribers of the last N days (var welcome_days): the welcome series.
with lifecycle as (
    select * from {{ ref('customer_lifecycle') }}
),

as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

customers as (
    select customer_id, email, first_name from {{ ref('dim_customers') }} where is_email_valid
),

final as (
    select c.customer_id, c.email, c.first_name, l.subscriber_at, l.lifecycle_stage
    from lifecycle l
    join customers c using (customer_id)
    cross join as_of a
    where l.subscriber_at > a.as_of_at - {{ days_interval(var('welcome_days', 7)) }}
)

select * from final
