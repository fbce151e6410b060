with source as (
    select * from {{ source('raw', 'shop_order_items') }}
),

final as (
    select
        order_id || '-' || line_number as order_item_id,
        order_id,
        line_number,
        product_id,
        quantity,
        unit_price,
        quantity * unit_price as line_amount
    from source
    qualify row_number() over (partition by order_id, line_number order by _loaded_at desc, _line desc) = 1
)

select * from final
