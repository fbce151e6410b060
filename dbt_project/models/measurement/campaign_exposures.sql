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
with decisions as (
    -- Audiences: a held-out member is the control arm, an add (delivered or failed) the treatment arm.
    select
        'audience:' || audience as campaign, audience as source_name, customer_id, channel, as_of, run_id,
        case when status = 'held_out' then 'control' else 'treatment' end as arm,
        cast(operation = 'add' and status = 'delivered' as integer) as messages
    from {{ ref('stg_activation__sync_log') }}
    where (status = 'held_out' or operation = 'add') and not {{ text_starts_with('audience', "'journey__'") }}
    union all
    -- Journeys in flight: one decision per entry that met a split.
    select
        'journey:' || journey as campaign, journey as source_name, customer_id, null as channel,
        min(entered_at) as as_of, any_value(run_id) as run_id, max(arm) as arm,
        count(*) filter (where transition = 'sent') as messages
    from {{ ref('stg_journeys__transitions') }}
    group by journey, customer_id, entry_no
    having max(arm) is not null
    union all
    -- Finished journey entries (compacted).
    select
        'journey:' || journey as campaign, journey as source_name, customer_id, null as channel,
        entered_at as as_of, compacted_run as run_id, arm, sends as messages
    from {{ ref('stg_journeys__finished') }}
    where arm is not null
),

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
    from decisions
    group by campaign, customer_id
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
             and s.session_started_at >= a.exposed_at - interval 90 day) as prior_visits_90d
    from assigned a
    left join holdouts h on h.campaign = a.campaign
)

select * from final
