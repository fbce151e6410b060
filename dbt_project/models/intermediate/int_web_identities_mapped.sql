-- Anonymous web visitors linked to customers through identify calls (user id or email trait) and alias calls
-- (Segment's alias says `previousId`, the device's anonymous id, is the same person as `userId`: it links the two
-- the way a login does).
with events as (
    select message_id, case when event_type = 'alias' then coalesce(previous_id, anonymous_id) else anonymous_id end
            as anonymous_id,
        shop_customer_id, email_canonical, event_at
    from {{ ref('stg_web__events') }}
    where shop_customer_id is not null or email_canonical is not null
),

records as (
    select * from {{ ref('int_customer_records_resolved') }}
),

emails as (
    select distinct email_canonical, customer_id
    from {{ ref('int_customer_records_unioned') }} u
    join records r on r.source = u.source and r.record_id = u.record_id
    where email_canonical is not null
),

linked as (
    select e.anonymous_id, coalesce(by_id.customer_id, by_email.customer_id) as customer_id, e.event_at
    from events e
    left join records by_id on by_id.source = 'shop' and by_id.record_id = e.shop_customer_id
    left join emails by_email on by_email.email_canonical = e.email_canonical
),

final as (
    -- The most recent identification wins when a device was shared.
    select anonymous_id, max_by(customer_id, (event_at, customer_id)) as customer_id, min(event_at) as first_identified_at
    from linked
    where customer_id is not null and anonymous_id is not null  -- a server-side call may carry a user id only
    group by anonymous_id
)

select * from final
