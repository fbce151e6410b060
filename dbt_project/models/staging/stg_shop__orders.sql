-- Incremental by day of ordered_at (macros/incremental_by_day.sql): a normal day rebuilds only the days that got
-- rows, and the days where a re-sent order stood before (its latest version replaces it).
{{ day_partitioned('order_date') }}
with source as (
    select * from {{ source('raw', 'shop_orders') }}
    where {{ not_erased([['id', 'customer_id']]) }}
),

{{ day_scoped('source', 'order_id', 'ordered_at', 'order_date') }},

deduplicated as (
    select
        order_id,
        customer_id as shop_customer_id,
        ordered_at,
        lower(status) as status,
        upper(currency) as currency,
        total_amount,
        cast(ordered_at as date) as order_date,
        _loaded_at
    from scoped
    qualify row_number() over (partition by order_id order by _loaded_at desc, _line desc) = 1
),

final as (
    select * from deduplicated
    {%- if is_incremental() %}
    where {{ not_kept_elsewhere('deduplicated', 'order_id', 'order_date') }}
    {%- endif %}
)

select * from final
