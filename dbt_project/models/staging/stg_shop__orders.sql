with source as (
    select * from {{ source('raw', 'shop_orders') }}
    where {{ not_erased([['id', 'customer_id']]) }}
),

final as (
    select
        order_id,
        customer_id as shop_customer_id,
        ordered_at,
        lower(status) as status,
        upper(currency) as currency,
        total_amount
    from source
    qualify row_number() over (partition by order_id order by _loaded_at desc, _line desc) = 1
)

select * from final
