-- Lifecycle stage per customer: subscriber -> lead -> MQL -> SQL -> customer, with the time each
-- stage was first reached. Incremental: a reached date never moves later or disappears, so a
-- stage never goes backwards even when points decay or a CRM record is edited.
{#- Spark's Parquet tables have no row-level merge (dbt-spark would append: each customer twice from day 2 on), and a
    full overwrite may not read the table it overwrites: there the run overwrites the whole table from a copy of it
    taken by the pre-hook (`held`), dropped afterwards. DuckDB merges by customer_id. -#}
{% set held = this.schema ~ '.' ~ this.identifier ~ '__held' %}
{% if target.type == 'spark' %}
{{ config(materialized='incremental', incremental_strategy='insert_overwrite', file_format='parquet',
          on_schema_change='fail',
          pre_hook=["drop table if exists {{ this.schema }}.{{ this.identifier }}__held",
                    "{% if is_incremental() %}create table {{ this.schema }}.{{ this.identifier }}__held using parquet
                     as select * from {{ this }}{% endif %}"],
          post_hook=["drop table if exists {{ this.schema }}.{{ this.identifier }}__held"]) }}
{% else %}
{{ config(materialized='incremental', unique_key='customer_id', on_schema_change='fail') }}
{% endif %}

with customers as (
    select customer_id from {{ ref('dim_customers') }}
),

subscribed as (
    select customer_id, min(recorded_at) as subscriber_at
    from {{ ref('int_consent_records_matched') }}
    where channel = 'email' and status = 'opt_in' and customer_id is not null
    group by customer_id
),

crm as (
    select r.customer_id,
           min(u.created_at) as crm_lead_at,
           min(u.updated_at) filter (where u.lifecycle_stage in ('sql', 'opportunity', 'customer')) as crm_sql_at
    from {{ ref('int_customer_records_unioned') }} u
    join {{ ref('int_customer_records_resolved') }} r using (source, record_id)
    where u.source = 'crm'
    group by r.customer_id
),

engaged as (
    select customer_id, min(event_at) as form_at
    from {{ ref('fct_web_events') }}
    where event_name in ('form_submitted', 'webinar_registered') and customer_id is not null
    group by customer_id
),

cumulative as (
    -- Undecayed points accumulate monotonically, so "first time over the threshold" is well defined.
    select customer_id, event_at,
           sum(points) over (partition by customer_id order by event_at, point_event_id
                             rows between unbounded preceding and current row) as points_so_far
    from {{ ref('int_lead_point_events_scored') }}
),

thresholds as (
    select customer_id,
           min(event_at) filter (where points_so_far >= {{ var('mql_points', 40) }}) as mql_at,
           min(event_at) filter (where points_so_far >= {{ var('sql_points', 120) }}) as points_sql_at
    from cumulative
    group by customer_id
),

bought as (
    select customer_id, min(ordered_at) as customer_at
    from {{ ref('fct_orders') }}
    where status = 'completed' and customer_id is not null
    group by customer_id
),

reached as (
    select
        c.customer_id,
        s.subscriber_at,
        least(crm.crm_lead_at, e.form_at) as lead_at,
        t.mql_at,
        least(crm.crm_sql_at, t.points_sql_at) as sql_at,
        b.customer_at
    from customers c
    left join subscribed s using (customer_id)
    left join crm using (customer_id)
    left join engaged e using (customer_id)
    left join thresholds t using (customer_id)
    left join bought b using (customer_id)
),

{% if is_incremental() %}
kept as (
    -- Earliest of what was recorded before and what the data says now.
    select
        r.customer_id,
        least(r.subscriber_at, p.subscriber_at) as subscriber_at,
        least(r.lead_at, p.lead_at) as lead_at,
        least(r.mql_at, p.mql_at) as mql_at,
        least(r.sql_at, p.sql_at) as sql_at,
        least(r.customer_at, p.customer_at) as customer_at
    from reached r
    left join {{ held if target.type == 'spark' else this }} p using (customer_id)
),
{% else %}
kept as (
    select * from reached
),
{% endif %}

final as (
    select
        customer_id,
        case when customer_at is not null then 'customer'
             when sql_at is not null then 'sql'
             when mql_at is not null then 'mql'
             when lead_at is not null then 'lead'
             when subscriber_at is not null then 'subscriber'
             else 'unknown' end as lifecycle_stage,
        subscriber_at, lead_at, mql_at, sql_at, customer_at
    from kept
)

select * from final
