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

-- Survivorship per attribute (docs/identity.md): the value comes from one record, chosen by the rule below,
-- and its `*_source` column says which source it came from (lineage).
--   email, names: most trusted source (CRM, then shop), then most recently updated; valid emails only
--   phone, birth date, gender: most recently updated non-null value, any source
--   address: the most recently updated record with a street; all address fields from that same record
--   company, job title, CRM stage: CRM only, most recently updated
golden as (
    -- record_id breaks ties (two records updated at the same time), so identical rebuilds pick the same value.
    select
        customer_id,
        arg_max(email, (-source_rank, updated_at, record_id)) filter (where is_email_valid) as email,
        arg_max(source, (-source_rank, updated_at, record_id)) filter (where is_email_valid) as email_source,
        arg_max(first_name, (-source_rank, updated_at, record_id)) filter (where first_name is not null) as first_name,
        arg_max(last_name, (-source_rank, updated_at, record_id)) filter (where first_name is not null) as last_name,
        arg_max(source, (-source_rank, updated_at, record_id)) filter (where first_name is not null) as name_source,
        arg_max(phone_e164, (updated_at, record_id)) filter (where phone_e164 is not null) as phone_e164,
        arg_max(source, (updated_at, record_id)) filter (where phone_e164 is not null) as phone_source,
        -- A DuckDB struct literal: sqlfluff's spacing rule reads its braces as Jinja's.
        arg_max({'street': street, 'city': city, 'state': state, 'postal_code': postal_code, 'source': source},  -- noqa: LT01
                (updated_at, record_id)) filter (where street is not null) as address,
        arg_max(birth_date, (updated_at, record_id)) filter (where birth_date is not null) as birth_date,
        arg_max(source, (updated_at, record_id)) filter (where birth_date is not null) as birth_date_source,
        arg_max(gender, (updated_at, record_id)) filter (where gender is not null) as gender,
        arg_max(source, (updated_at, record_id)) filter (where gender is not null) as gender_source,
        arg_max(company_id, (updated_at, record_id)) filter (where company_id is not null) as company_id,
        arg_max(job_title, (updated_at, record_id)) filter (where job_title is not null) as job_title,
        arg_max(lifecycle_stage, (updated_at, record_id)) filter (where lifecycle_stage is not null) as crm_lifecycle_stage,
        min(created_at) as first_seen_at,
        max(updated_at) as last_updated_at,
        count(*) as source_records,
        count(*) filter (where source = 'crm') as crm_records,
        count(*) filter (where source = 'shop') as shop_records,
        min(record_id) filter (where source = 'shop') as shop_customer_id,
        min(record_id) filter (where source = 'crm') as crm_contact_id
    from records
    group by customer_id
),

final as (
    select
        g.* exclude (address),
        g.address.street as street,
        g.address.city as city,
        g.address.state as state,
        g.address.postal_code as postal_code,
        g.address.source as address_source,
        g.email is not null as is_email_valid,
        coalesce(o.order_count, 0) as order_count,
        coalesce(o.lifetime_revenue, 0) as lifetime_revenue,
        o.first_order_at,
        o.last_order_at
    from golden g
    left join orders o using (customer_id)
)

select * from final
