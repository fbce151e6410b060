-- Lifecycle stage per customer: subscriber -> lead -> MQL -> SQL -> customer, with the time each
-- stage was first reached. Incremental: a reached date never moves later or disappears, so a
-- stage never goes backwards even when points decay or a CRM record is edited.
-- What a normal run reads (issue 28): the stages from consent, CRM records and orders (one row per record or order)
-- for everyone; the form signal from the events counted per day (fct_web_event_days); and the points thresholds,
-- which need a customer's whole ordered history of point events, only for the customers it can have changed for:
-- new customers, those with web or email events loaded since the last build or on the latest `beacon_lookback_days`
-- event days, and those whose inputs digest changed (the records and their e-mails, the devices, the attributes that
-- earn points, the rules and thresholds: a merge, a newly identified device, an edited CRM record). The others keep the dates
-- they have, which is what the earliest-date rule gives them anyway. Only rows that changed are written.
-- A customer merged away (no longer in dim_customers) leaves: a full build would not have them (DuckDB: a delete after
-- the merge; Spark builds this model whole).
{{ config(materialized='incremental', unique_key='customer_id', on_schema_change='append_new_columns',
          post_hook=["{% if target.type != 'spark' %}delete from {{ this }} where customer_id not in
                      (select customer_id from {{ ref('dim_customers') }}){% endif %}"]) }}

with customers as (
    select customer_id, first_seen_at, company_id, lower(coalesce(job_title, '')) as job_title
    from {{ ref('dim_customers') }}
),

subscribed as (
    select customer_id, min(recorded_at) as subscriber_at
    from {{ ref('int_consent_records_matched') }}
    where channel = 'email' and status = 'opt_in' and customer_id is not null
    group by customer_id
),

records as (
    select r.customer_id, u.source, u.record_key, u.email_canonical, u.created_at, u.updated_at, u.lifecycle_stage
    from {{ ref('int_customer_records_unioned') }} u
    join {{ ref('int_customer_records_resolved') }} r using (source, record_id)
),

crm as (
    select customer_id,
           min(created_at) as crm_lead_at,
           min(updated_at) filter (where lifecycle_stage in ('sql', 'opportunity', 'customer')) as crm_sql_at
    from records
    where source = 'crm'
    group by customer_id
),

engaged as (
    select customer_id, min(first_form_at) as form_at
    from {{ ref('fct_web_event_days') }}
    where first_form_at is not null and customer_id is not null
    group by customer_id
),

bought as (
    select customer_id, min(ordered_at) as customer_at
    from {{ ref('fct_orders') }}
    where status = 'completed' and customer_id is not null
    group by customer_id
),

rules as (
    select {{ sorted_distinct_list("concat_ws(':', rule_id, source, match, cast(points as string), point_group)",
                                   "'|'") }} as rules
    from {{ ref('lead_point_rules') }}
),

record_keys as (
    select customer_id, {{ sorted_distinct_list("record_key || ':' || coalesce(email_canonical, '')", "','") }} as keys
    from records
    group by customer_id
),

devices as (
    select customer_id, {{ sorted_distinct_list('anonymous_id', "','") }} as keys
    from {{ ref('int_web_identities_mapped') }}
    group by customer_id
),

digests as (
    -- what a customer's point events are read through: its records (the e-mails map email events), its devices,
    -- the attributes that earn points, and the rules and thresholds
    select
        c.customer_id,
        md5(concat_ws('#',
            coalesce(rk.keys, ''), coalesce(dv.keys, ''), cast(c.first_seen_at as string), coalesce(c.company_id, ''),
            c.job_title, r.rules, '{{ var("mql_points", 40) }}', '{{ var("sql_points", 120) }}')) as _inputs_digest
    from customers c
    cross join rules r
    left join record_keys rk using (customer_id)
    left join devices dv using (customer_id)
),

{% if is_incremental() %}
loaded_since as (
    -- the latest event load the last build had seen
    select coalesce(max(_loaded_at), cast('1900-01-01' as timestamp)) as since_at from {{ this }}
),

web_days as (
    select customer_id, event_date, _loaded_at from {{ ref('fct_web_event_days') }}
    union all
    select customer_id, event_date, _loaded_at from {{ ref('fct_email_event_days') }}
),

recent as (
    -- the latest `beacon_lookback_days` event days (a safety margin for rows written while the last build ran)
    select max(event_date) - interval {{ var('beacon_lookback_days') }} day as after_day from web_days
),

touched as (
    select d.customer_id from digests d
    left join {{ this }} p using (customer_id)
    where p.customer_id is null or p._inputs_digest is null or p._inputs_digest <> d._inputs_digest
    union
    select customer_id from web_days
    where customer_id is not null
        and (_loaded_at > (select since_at from loaded_since) or event_date > (select after_day from recent))
),
{% endif %}

point_events as (
    select customer_id, event_at, point_event_id, points
    from {{ ref('int_lead_point_events_scored') }}
    {%- if is_incremental() %}
    where customer_id in (select customer_id from touched)
    {%- endif %}
),

cumulative as (
    -- Undecayed points accumulate monotonically, so "first time over the threshold" is well defined.
    select customer_id, event_at,
           sum(points) over (partition by customer_id order by event_at, point_event_id
                             rows between unbounded preceding and current row) as points_so_far
    from point_events
),

thresholds as (
    select customer_id,
           min(event_at) filter (where points_so_far >= {{ var('mql_points', 40) }}) as mql_at,
           min(event_at) filter (where points_so_far >= {{ var('sql_points', 120) }}) as points_sql_at
    from cumulative
    group by customer_id
),

event_loads as (
    select max(_loaded_at) as _loaded_at from {{ ref('fct_web_event_days') }}
    union all
    select max(_loaded_at) from {{ ref('fct_email_event_days') }}
),

loads as (
    -- the latest event load this build has seen (the next build's watermark)
    select max(_loaded_at) as _loaded_at from event_loads
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
    -- Earliest of what was recorded before and what the data says now (a customer not touched has no thresholds
    -- now: it keeps the ones recorded).
    select
        r.customer_id,
        least(r.subscriber_at, p.subscriber_at) as subscriber_at,
        least(r.lead_at, p.lead_at) as lead_at,
        least(r.mql_at, p.mql_at) as mql_at,
        least(r.sql_at, p.sql_at) as sql_at,
        least(r.customer_at, p.customer_at) as customer_at
    from reached r
    left join {{ this }} p using (customer_id)
),
{% else %}
kept as (
    select * from reached
),
{% endif %}

final as (
    select
        k.customer_id,
        case when k.customer_at is not null then 'customer'
             when k.sql_at is not null then 'sql'
             when k.mql_at is not null then 'mql'
             when k.lead_at is not null then 'lead'
             when k.subscriber_at is not null then 'subscriber'
             else 'unknown' end as lifecycle_stage,
        k.subscriber_at, k.lead_at, k.mql_at, k.sql_at, k.customer_at,
        d._inputs_digest,
        (select _loaded_at from loads) as _loaded_at
    from kept k
    join digests d using (customer_id)
)

select f.* from final f
{%- if is_incremental() %}
-- only the rows that changed (new customers, an earlier date, a new digest); the watermark moves with them
where not exists (
    select 1 from {{ this }} p
    where p.customer_id = f.customer_id
        and p._inputs_digest = f._inputs_digest
        and p.subscriber_at is not distinct from f.subscriber_at and p.lead_at is not distinct from f.lead_at
        and p.mql_at is not distinct from f.mql_at and p.sql_at is not distinct from f.sql_at
        and p.customer_at is not distinct from f.customer_at
)
{%- endif %}
