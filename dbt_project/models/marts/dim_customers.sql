-- One row per customer: golden attributes (CRM first, then the most recent value) with lineage.
with records as (
    select u.*, r.customer_id
    from {{ ref('int_customer_records_unioned') }} u
    join {{ ref('int_customer_records_resolved') }} r using (source, record_id)
),

orders as (
    select
        customer_id,
        count(*) as order_count,
        sum(total_amount) as lifetime_revenue,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at
    from {{ ref('fct_orders') }}
    where status = 'completed'
    group by customer_id
),

golden as (
    select
        customer_id,
        arg_max(email, (-source_rank, updated_at)) filter (where is_email_valid) as email,
        arg_max(source, (-source_rank, updated_at)) filter (where is_email_valid) as email_source,
        arg_max(first_name, (-source_rank, updated_at)) filter (where first_name is not null) as first_name,
        arg_max(last_name, (-source_rank, updated_at)) filter (where last_name is not null) as last_name,
        arg_max(source, (-source_rank, updated_at)) filter (where first_name is not null) as name_source,
        arg_max(phone_e164, updated_at) filter (where phone_e164 is not null) as phone_e164,
        arg_max(street, updated_at) filter (where street is not null) as street,
        arg_max(city, updated_at) filter (where street is not null) as city,
        arg_max(state, updated_at) filter (where street is not null) as state,
        arg_max(postal_code, updated_at) filter (where street is not null) as postal_code,
        arg_max(source, updated_at) filter (where street is not null) as address_source,
        max(birth_date) as birth_date,
        max(gender) as gender,
        arg_max(company_id, updated_at) filter (where company_id is not null) as company_id,
        arg_max(job_title, updated_at) filter (where job_title is not null) as job_title,
        arg_max(lifecycle_stage, updated_at) filter (where lifecycle_stage is not null) as crm_lifecycle_stage,
        min(created_at) as first_seen_at,
        count(*) filter (where source = 'crm') as crm_records,
        count(*) filter (where source = 'shop') as shop_records,
        min(record_id) filter (where source = 'shop') as shop_customer_id
    from records
    group by customer_id
),

final as (
    select
        g.*,
        g.email is not null as is_email_valid,
        coalesce(o.order_count, 0) as order_count,
        coalesce(o.lifetime_revenue, 0) as lifetime_revenue,
        o.first_order_at,
        o.last_order_at
    from golden g
    left join orders o using (customer_id)
)

select * from final
