{#- Campaign outcomes, defined once. The mart `campaign_exposure_outcomes` calls `exposure_outcomes`; Python
    (beacon.measure.outcomes: the campaign report, `beacon measure lift --window`, `--csv` and the simulated
    worlds) renders this same file with plain Jinja and runs the SQL in DuckDB. So only plain Jinja here: no
    ref(), var(), adapter or exceptions. The window is the setting BEACON_MEASUREMENT_WINDOW_DAYS (dbt var
    measurement_window_days, which dbt_project.yml reads from it). -#}

{#- The end of the outcome window: exposure + window_days (fractions of a day count, to the microsecond). -#}
{% macro measurement_window_end(exposed_at, window_days) -%}
{%- set micros = "cast(round(cast(" ~ window_days ~ " as double) * 86400000000) as bigint)" -%}
({{ exposed_at }} + {{ microseconds_interval(micros) }})
{%- endmacro %}

{#- An event counts for an exposure when it falls in (exposed_at, exposed_at + window]. -#}
{% macro in_measurement_window(occurred_at, exposed_at, window_days) -%}
({{ occurred_at }} > {{ exposed_at }} and {{ occurred_at }} <= {{ measurement_window_end(exposed_at, window_days) }})
{%- endmacro %}

{#- Every exposure row with its outcomes in the window, by assigned group (intent to treat: a treated person
    whose message failed still counts as treated). `exposures`: campaign, customer_id, exposed_at and any other
    columns (kept); `events`: customer_id, event_type, occurred_at, revenue and, when `events_name_campaign`, a
    campaign (a click counts for its own campaign only). Orders count for every campaign whose window holds
    them: the lift compares arms of one campaign, so nothing is double counted there. `keys`: the columns that
    identify an exposure row. -#}
{% macro exposure_outcomes(exposures, events, window_days, keys=['campaign', 'customer_id'],
                           events_name_campaign=false) -%}
with x as (
    select * from {{ exposures }}
),

e as (
    select * from {{ events }}
),

in_window as (
    select {% for k in keys %}x.{{ k }}, {% endfor %}e.event_type, e.revenue, e.occurred_at
    from x
    join e on e.customer_id = x.customer_id
        and {{ in_measurement_window('e.occurred_at', 'x.exposed_at', window_days) }}
    {%- if events_name_campaign %}
        and (e.campaign is null or e.campaign = x.campaign or e.event_type = 'order')
    {%- endif %}
),

counts as (
    select
        {% for k in keys %}{{ k }}, {% endfor %}
        count(*) filter (where event_type = 'order') as orders,
        coalesce(sum(revenue) filter (where event_type = 'order'), 0) as revenue,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'form_submitted') as form_submits,
        count(*) filter (where event_type not in ('order', 'click', 'form_submitted')) as other_events,
        min(occurred_at) filter (where event_type = 'order') as first_order_at
    from in_window
    group by {% for k in keys %}{{ k }}{{ ', ' if not loop.last }}{% endfor %}
)

select
    x.*,
    cast({{ window_days }} as double) as window_days,
    cast(coalesce(c.orders, 0) > 0 as integer) as converted,
    coalesce(c.orders, 0) as orders,
    coalesce(c.revenue, 0) as revenue,
    coalesce(c.clicks, 0) as clicks,
    coalesce(c.form_submits, 0) as form_submits,
    coalesce(c.other_events, 0) as other_events,
    c.first_order_at
from x
left join counts c on {% for k in keys %}c.{{ k }} = x.{{ k }}{{ ' and ' if not loop.last }}{% endfor %}
{%- endmacro %}
