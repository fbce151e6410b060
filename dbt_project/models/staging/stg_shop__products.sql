with source as (
    select * from {{ source('raw', 'shop_products') }}
),

final as (
    select product_id, name as product_name, category, product_line, price
    from source
    qualify row_number() over (partition by product_id order by _loaded_at desc, _line desc) = 1
)

select * from final
