-- Order lines with the order's customer and time and the product's category and line.
with items as (
    select * from {{ ref('stg_shop__order_items') }}
),

orders as (
    select order_id, customer_id, ordered_at, status from {{ ref('fct_orders') }}
),

products as (
    select product_id, category, product_line from {{ ref('stg_shop__products') }}
),

final as (
    select i.order_item_id, i.order_id, o.customer_id, o.ordered_at, o.status, i.product_id, p.category,
           p.product_line, i.quantity, i.unit_price, i.line_amount
    from items i
    join orders o using (order_id)
    left join products p using (product_id)
)

select * from final
