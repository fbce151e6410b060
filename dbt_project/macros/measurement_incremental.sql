{#- The measurement marts incremental by exposure day (docs/scale.md, "Incremental by day"; docs/measurement.md).

    A row of `campaign_exposures` / `campaign_exposure_outcomes` (one campaign and person) depends on that pair's
    decisions (sync log, journeys), on the person's completed orders and sessions in the 90 days before exposure
    (covariates) and on the person's outcome events in the window after it. `measurement_input_days` keeps, per
    input and day, a digest of those inputs and the build (`_seq`) in which a day's digest last changed. A mart row
    carries `_facts_seq`, the latest `_seq` it has seen; an incremental run rebuilds the exposure days an input
    change since then can reach. Counted from the data, never from the clock; a full refresh gives the same rows
    (tests/dbt/test_incremental.py). -#}

{#- Every assignment decision, one row each: campaign, source_name, customer_id, channel, as_of, run_id, arm,
    messages. Audiences: from activation's sync log (held out = control, an add = treatment); journeys: each entry
    that met a split, in flight (the transitions log) or finished (compacted). Journey sends logged as audiences
    named journey__<name>__<node> are the journey's, counted once there. -#}
{% macro campaign_decisions() -%}
    select
        'audience:' || audience as campaign, audience as source_name, customer_id, channel, as_of, run_id,
        case when status = 'held_out' then 'control' else 'treatment' end as arm,
        cast(operation = 'add' and status = 'delivered' as integer) as messages
    from {{ ref('stg_activation__sync_log') }}
    where (status = 'held_out' or operation = 'add') and substr(audience, 1, 9) <> 'journey__'
    union all
    select
        'journey:' || journey as campaign, journey as source_name, customer_id, null as channel,
        min(entered_at) as as_of, any_value(run_id) as run_id, max(arm) as arm,
        count(*) filter (where transition = 'sent') as messages
    from {{ ref('stg_journeys__transitions') }}
    group by journey, customer_id, entry_no
    having max(arm) is not null
    union all
    select
        'journey:' || journey as campaign, journey as source_name, customer_id, null as channel,
        entered_at as as_of, compacted_run as run_id, arm, sends as messages
    from {{ ref('stg_journeys__finished') }}
    where arm is not null
{%- endmacro %}

{#- The latest input change a measurement mart has seen (0 before its first build). -#}
{% macro measurement_seen_seq() -%}
(select coalesce(max(_facts_seq), 0) from {{ this }})
{%- endmacro %}

{#- The build sequence number a measurement mart's rebuilt rows carry: the latest input change. -#}
{% macro measurement_facts_seq() -%}
(select coalesce(max(_seq), 0) from {{ ref('measurement_input_days') }})
{%- endmacro %}

{#- The CTEs `changed_inputs` and `rebuilt_days(day)` of an incremental run of a measurement mart (partitioned by
    `exposed_date`, with `campaign`, `customer_id` and `_facts_seq`). `decisions`: a CTE of campaign_decisions().
    An exposure day is rebuilt when
      1. a decision changed on it (a new pair's first decision lands there),
      2. a pair the mart holds there got a changed decision (its messages, or an earlier first decision),
      3. an outcome event (order, click, form submit, configured web event) changed on a day d its window can
         reach: exposure days d - window - 1 .. d; completed orders also feed the covariates of the 90 days after
         them: d .. d + 91,
      4. a session changed on a day d: the covariates of exposure days d .. d + 91,
      5. it is one of the mart's latest `beacon_lookback_days` days.
    A late or re-sent event, a merge that re-keys a customer's events, a refunded order: each changes the digest of
    the days it touches, so rule 3 or 4 reaches every exposure it can change. -#}
{% macro measurement_rebuilt_days(decisions) -%}
{%- set reach = (var('measurement_window_days') | float) | round(0, 'ceil') | int + 1 %}
changed_inputs as (
    select source, day from {{ ref('measurement_input_days') }}
    where _seq > {{ measurement_seen_seq() }}
),

held_days as (
    select distinct exposed_date as day from {{ this }}
),

rebuilt_days as (
    select day from changed_inputs where source = 'decisions'
    union
    select held.exposed_date as day
    from {{ this }} as held
    join {{ decisions }} as d on d.campaign = held.campaign and d.customer_id = held.customer_id
    where cast(d.as_of as date) in (select day from changed_inputs where source = 'decisions')
    union
    select h.day from held_days as h
    join changed_inputs as c on c.source = 'outcomes' and h.day >= c.day - {{ reach }} and h.day <= c.day + 91
    union
    select h.day from held_days as h
    join changed_inputs as c on c.source = 'sessions' and h.day >= c.day and h.day <= c.day + 91
    union
    select day from (
        select day from held_days
        order by day desc
        limit {{ var('beacon_lookback_days') }}
    ) as recent
)
{%- endmacro %}


{#- The CTE `rebuilt_days(day)` of a mart that follows `upstream` day by day (both partitioned by `exposed_date`
    with `_facts_seq`): the days `upstream` rebuilt since this mart last copied them (another `_facts_seq`, or a
    day this mart does not hold), and this mart's latest `beacon_lookback_days` days. -#}
{% macro measurement_followed_days(upstream) -%}
rebuilt_days as (
    select u.day from (
        select exposed_date as day, max(_facts_seq) as seq from {{ upstream }} group by exposed_date
    ) as u
    left join (
        select exposed_date as day, max(_facts_seq) as seq from {{ this }} group by exposed_date
    ) as mine on mine.day = u.day
    where mine.seq is null or mine.seq <> u.seq
    union
    select day from (
        select distinct exposed_date as day from {{ this }}
        order by day desc
        limit {{ var('beacon_lookback_days') }}
    ) as recent
)
{%- endmacro %}
