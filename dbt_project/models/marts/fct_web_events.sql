-- Web events with the customer id when the visitor has been identified (also retroactively).
with events as (
    select * from {{ ref('stg_web__events') }}
),

identities as (
    select * from {{ ref('int_web_identities_mapped') }}
),

final as (
    select e.message_id, i.customer_id, e.anonymous_id, e.event_type, e.event_name, e.event_at, e.page_path,
           e.product_id, e.webinar_id
    from events e
    left join identities i using (anonymous_id)
)

select * from final
