-- Web sessions by device: a visitor's events split where they were idle longer than the session timeout
-- (var web_session_timeout_minutes), keyed by the device (anonymous_id), never by the customer: fct_web_sessions adds
-- the customer from the current identity mapping when read, so a merge or a newly identified device changes no row.
-- Incremental by the day a session started (macros/incremental_by_day.sql, day_partitioned): a session depends only
-- on its device's events, so a normal run splits again only the devices with rows loaded since the last build (and
-- those of the latest `beacon_lookback_days` session days), and replaces the session days where the result differs.
{% set timeout = var('web_session_timeout_minutes') %}
{#- The incremental run compares and unions `split` with `{{ this }}`, which match by position: the table's columns
    are read by name in this order (Spark stores the partition column last, so `select *` would not line up). -#}
{% set columns = 'session_id, anonymous_id, session_number, shop_customer_id, session_started_at, session_ended_at,
    duration_seconds, events, page_views, product_views, cart_adds, checkouts, converted, landing_page, is_bounce,
    _loaded_at, session_date' %}
{{ day_partitioned('session_date') }}
with all_events as (
    select message_id, anonymous_id, shop_customer_id, event_type, event_name, event_at, page_path, _loaded_at
    from {{ ref('stg_web__events') }}
),

{% if is_incremental() %}
touched as (
    -- devices with rows loaded since the last build, and those of the latest session days (rows loaded while it ran)
    select distinct coalesce(anonymous_id, '') as device from all_events
    where _loaded_at > (select coalesce(max(_loaded_at), cast('1900-01-01' as timestamp)) from {{ this }})
    union
    select coalesce(anonymous_id, '') as device from {{ this }}
    where session_date in (
        select day from (
            select distinct session_date as day from {{ this }} order by day desc limit {{ var('beacon_lookback_days') }}
        ) as recent
    )
),

events as (
    select * from all_events where coalesce(anonymous_id, '') in (select device from touched)
),
{% else %}
events as (
    select * from all_events
),
{% endif %}

gaps as (
    select
        *,
        case
            when lag(event_at) over (partition by anonymous_id order by event_at, message_id) is null then 1
            when event_at - lag(event_at) over (partition by anonymous_id order by event_at, message_id)
                 > interval '{{ timeout }} minutes' then 1
            else 0
        end as starts_session
    from events
),

numbered as (
    select
        *,
        sum(starts_session) over (partition by anonymous_id order by event_at, message_id
                                  rows between unbounded preceding and current row) as session_number
    from gaps
),

paged as (
    -- the session's first page in the sessions' order (time, then message id): two pages of one second are a
    -- tie that min_by(page_path, event_at) would break either way, and DuckDB and Spark broke it differently
    select
        *,
        row_number() over (partition by anonymous_id, session_number
                           order by case when page_path is null then 1 else 0 end asc, event_at asc,
                                    message_id asc) as page_rank
    from numbered
),

split as (
    select
        md5(anonymous_id || ':' || session_number) as session_id,
        anonymous_id,
        session_number,
        -- the shop's customer id an event of the session carried (the largest if several), for the customer
        max(shop_customer_id) as shop_customer_id,
        min(event_at) as session_started_at,
        max(event_at) as session_ended_at,
        {{ seconds_between('min(event_at)', 'max(event_at)') }} as duration_seconds,
        count(*) as events,
        count(*) filter (where event_type = 'page') as page_views,
        count(*) filter (where event_name = 'product_viewed') as product_views,
        count(*) filter (where event_name = 'product_added') as cart_adds,
        count(*) filter (where event_name = 'checkout_started') as checkouts,
        count(*) filter (where event_name = 'order_completed') > 0 as converted,
        max(case when page_rank = 1 then page_path end) as landing_page,
        count(*) = 1 as is_bounce,
        max(_loaded_at) as _loaded_at,
        -- last, where Spark stores a table's partition column
        cast(min(event_at) as date) as session_date
    from paged
    group by anonymous_id, session_number
),

{% if is_incremental() %}
held as (
    select {{ columns }} from {{ this }} where coalesce(anonymous_id, '') in (select device from touched)
),

rebuilt_days as (
    -- the session days where the touched devices' sessions differ from what the model holds
    select session_date as day from (
        select * from split
        except
        select * from held
    ) as added
    union
    select session_date as day from (
        select * from held
        except
        select * from split
    ) as removed
),

final as (
    select * from split where session_date in (select day from rebuilt_days)
    union all
    -- the other devices' sessions of those days, as they stand
    select {{ columns }} from {{ this }}
    where session_date in (select day from rebuilt_days)
        and coalesce(anonymous_id, '') not in (select device from touched)
)
{% else %}
final as (
    select * from split
)
{% endif %}

select * from final
