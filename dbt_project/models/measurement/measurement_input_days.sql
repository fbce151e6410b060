-- What the measurement marts read, summarised per input and day: the number of rows and a digest (xor of row
-- hashes) of the assignment decisions (by decision day), the outcome events (by event day; completed orders are
-- also the covariates) and the web sessions (by start day). An incremental run appends a row, with the next build
-- number `_seq`, for every day whose digest changed (a day whose rows all went away gets 0 rows and no digest); the measurement
-- marts rebuild the exposure days such a change can reach (macros/measurement_incremental.sql). A log: a full
-- refresh leaves it (full_refresh=false), so the marts' `_facts_seq` keeps its meaning.
{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false, on_schema_change='fail') }}
with decisions as (
    {{ campaign_decisions() }}
),

current_days as (
    select 'decisions' as source, cast(as_of as date) as day, count(*) as n_rows,
        bit_xor(hash(campaign, customer_id, channel, as_of, run_id, arm, messages)) as digest
    from decisions
    group by cast(as_of as date)
    union all
    select 'outcomes' as source, cast(occurred_at as date) as day, count(*) as n_rows,
        bit_xor(hash(customer_id, event_type, occurred_at, revenue)) as digest
    from {{ ref('campaign_outcome_events') }}
    group by cast(occurred_at as date)
    union all
    select 'sessions' as source, cast(session_started_at as date) as day, count(*) as n_rows,
        bit_xor(hash(customer_id, session_started_at)) as digest
    from {{ ref('fct_web_sessions') }}
    where customer_id is not null
    group by cast(session_started_at as date)
),

{% if is_incremental() %}
latest as (
    select source, day, n_rows, digest from (
        select source, day, n_rows, digest,
            row_number() over (partition by source, day order by _seq desc) as newest
        from {{ this }}
    ) as logged
    where newest = 1
),

changed as (
    select c.source, c.day, c.n_rows, c.digest
    from current_days as c
    left join latest as l on l.source = c.source and l.day = c.day
    where l.day is null or l.n_rows <> c.n_rows or l.digest <> c.digest
    union all
    select l.source, l.day, 0 as n_rows, null as digest
    from latest as l
    where l.n_rows > 0
        and not exists (select 1 from current_days as c where c.source = l.source and c.day = l.day)
),

final as (
    select source, day, n_rows, digest, (select coalesce(max(_seq), 0) + 1 from {{ this }}) as _seq
    from changed
)
{% else %}
final as (
    select source, day, n_rows, digest, 1 as _seq from current_days
)
{% endif %}

select * from final
