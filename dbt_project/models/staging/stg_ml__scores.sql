-- The ML DAG's scores (beacon ml score_all): one row per customer and model. The table exists from the first
-- ingest on (empty until scored), so this view reads it directly.
with source as (
    select * from {{ source('ml', 'scores') }}
),

final as (
    select
        customer_id,
        model,
        score
    from source
)

select * from final
