-- One row per campaign and assigned person: the arm (treatment or control), whether a message was sent, the
-- exposure time ("would have sent" for the control group, so both groups have a clock) and pre-exposure
-- covariates for CUPED. Audiences: from activation's sync log (a held-out member is logged as 'held_out', a
-- treated one as an 'add'); the first decision per person and audience is the assignment, for good.
-- People suppressed or in the global control group never enter either arm (both arms are eligible people).
-- Journeys: every entry that went through a split node (an arm, 'control' included) from the journeys
-- engine's log (in flight) and its compacted entries (finished); the exposure clock is the entry time, the
-- same for every arm. Journey sends also pass through the sync log, as audiences named journey__<name>__<node>:
-- those rows are left out here (they are the journey's, counted once above). The staging views are empty until
-- activation and the journeys engine first write their tables.
-- Incremental by exposure day (macros/measurement_incremental.sql): a normal day rebuilds the exposure days that a
-- changed decision, outcome or session can reach; `dbt build --full-refresh` gives the same rows.
{{ day_partitioned('exposed_date') }}
-- depends_on: {{ ref('measurement_input_days') }}

with decisions as (
    {{ campaign_decisions() }}
),

{% if is_incremental() %}
{{ measurement_rebuilt_days('decisions') }},

candidates as (
    -- The pairs that may stand on a rebuilt day: a decision there, or held there.
    select campaign, customer_id from decisions
    where cast(as_of as date) in (select day from rebuilt_days)
    union
    select campaign, customer_id from {{ this }}
    where exposed_date in (select day from rebuilt_days)
),

scoped as (
    select d.* from decisions as d
    join candidates as c on c.campaign = d.campaign and c.customer_id = d.customer_id
),
{% else %}
scoped as (
    select * from decisions
),
{% endif %}

holdouts as (
    -- The designed control share of each audience (meta.audience.holdout_pct), for the sample-ratio check.
    {%- set rows = [] %}
    {#- A unit test's context has no graph: there every holdout_pct is null. #}
    {%- if execute and graph.get('nodes') %}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
        and node.original_file_path.startswith('models/segments/') and node.config.meta.get('audience') %}
    {%- do rows.append("('audience:" ~ (node.config.meta.audience.get('name') or node.name) ~ "', "
                       ~ node.config.meta.audience.get('holdout_pct', 0) ~ ")") %}
    {%- endfor %}
    {%- endif %}
    {%- if rows %}
    select holdouts.campaign, cast(holdouts.holdout_pct as double) as holdout_pct
    from (values {{ rows | join(', ') }}) holdouts (campaign, holdout_pct)
    {%- else %}
    select cast(null as {{ dbt.type_string() }}) as campaign, cast(null as double) as holdout_pct where false
    {%- endif %}
),

assigned as (
    select
        campaign,
        customer_id,
        any_value(source_name) as source_name,
        min_by(arm, as_of) as arm,
        min(as_of) as exposed_at,
        min_by(channel, as_of) as channel,
        min_by(run_id, as_of) as run_id,
        sum(messages) > 0 as sent,
        cast(sum(messages) as integer) as messages
    from scoped
    group by campaign, customer_id
    {%- if is_incremental() %}
    having cast(min(as_of) as date) in (select day from rebuilt_days)
    {%- endif %}
),

orders as (
    select customer_id, ordered_at, total_amount from {{ ref('fct_orders') }} where status = 'completed'
),

final as (
    select
        a.campaign, a.customer_id, a.source_name, a.arm, a.sent, a.messages, a.channel, a.exposed_at, a.run_id,
        cast(h.holdout_pct as double) as holdout_pct,
        (select count(*) from orders o
         where o.customer_id = a.customer_id and o.ordered_at < a.exposed_at
             and o.ordered_at >= a.exposed_at - interval 90 day) as prior_orders_90d,
        coalesce((select sum(o.total_amount) from orders o
                  where o.customer_id = a.customer_id and o.ordered_at < a.exposed_at
                      and o.ordered_at >= a.exposed_at - interval 90 day), 0) as prior_revenue_90d,
        (select count(*) from {{ ref('fct_web_sessions') }} s
         where s.customer_id = a.customer_id and s.session_started_at < a.exposed_at
             and s.session_started_at >= a.exposed_at - interval 90 day) as prior_visits_90d,
        cast(a.exposed_at as date) as exposed_date,
        {{ measurement_facts_seq() }} as _facts_seq
    from assigned a
    left join holdouts h on h.campaign = a.campaign
)

select * from final
