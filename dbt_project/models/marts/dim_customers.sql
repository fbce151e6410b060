-- One row per customer: golden attributes (CRM first, then the most recent value) with lineage.
{%- set by_rank = sort_key(['-source_rank', 'updated_at', 'record_id']) %}
{%- set by_time = sort_key(['updated_at', 'record_id']) %}
{#- golden's columns but the address struct, which final splits into its fields -#}
{%- set golden_columns = ['customer_id', 'email', 'email_source', 'first_name', 'last_name', 'name_source',
    'phone_e164', 'phone_source', 'birth_date', 'birth_date_source', 'gender', 'gender_source', 'company_id',
    'job_title', 'crm_lifecycle_stage', 'first_seen_at', 'last_updated_at', 'source_records', 'crm_records',
    'shop_records', 'shop_customer_id', 'crm_contact_id'] %}
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
        max_by(email, {{ by_rank }}) filter (where is_email_valid) as email,
        max_by(source, {{ by_rank }}) filter (where is_email_valid) as email_source,
        max_by(first_name, {{ by_rank }}) filter (where first_name is not null) as first_name,
        max_by(last_name, {{ by_rank }}) filter (where first_name is not null) as last_name,
        max_by(source, {{ by_rank }}) filter (where first_name is not null) as name_source,
        max_by(phone_e164, {{ by_time }}) filter (where phone_e164 is not null) as phone_e164,
        max_by(source, {{ by_time }}) filter (where phone_e164 is not null) as phone_source,
        max_by({{ struct_of({'street': 'street', 'city': 'city', 'state': 'state', 'postal_code': 'postal_code',
                             'source': 'source'}) }}, {{ by_time }}) filter (where street is not null) as address,
        max_by(birth_date, {{ by_time }}) filter (where birth_date is not null) as birth_date,
        max_by(source, {{ by_time }}) filter (where birth_date is not null) as birth_date_source,
        max_by(gender, {{ by_time }}) filter (where gender is not null) as gender,
        max_by(source, {{ by_time }}) filter (where gender is not null) as gender_source,
        max_by(company_id, {{ by_time }}) filter (where company_id is not null) as company_id,
        max_by(job_title, {{ by_time }}) filter (where job_title is not null) as job_title,
        max_by(lifecycle_stage, {{ by_time }}) filter (where lifecycle_stage is not null) as crm_lifecycle_stage,
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
        {%- for c in golden_columns %}
        g.{{ c }},
        {%- endfor %}
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
