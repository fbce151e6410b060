-- Every person-like record from the CRM and the shop, in one shape, for identity resolution.
-- record_key (source:record_id) is the node id of the identity graph.
with crm as (
    select
        'crm' as source,
        contact_id as record_id,
        1 as source_rank,  -- CRM is the most trusted source for names and stages
        email, is_email_valid, email_canonical, phone_e164, first_name, last_name,
        first_name_key, last_name_key, first_name_aliases, street, street_key, city, state, postal_code,
        cast(null as date) as birth_date, cast(null as {{ dbt.type_string() }}) as gender, company_id, job_title, lifecycle_stage,
        created_at, updated_at
    from {{ ref('stg_crm__contacts') }}
),

shop as (
    select
        'shop' as source,
        shop_customer_id as record_id,
        2 as source_rank,
        email, is_email_valid, email_canonical, phone_e164, first_name, last_name,
        first_name_key, last_name_key, first_name_aliases, street, street_key, city, state, postal_code,
        birth_date, gender, cast(null as {{ dbt.type_string() }}) as company_id,
        cast(null as {{ dbt.type_string() }}) as job_title,
        cast(null as {{ dbt.type_string() }}) as lifecycle_stage,
        created_at, created_at as updated_at
    from {{ ref('stg_shop__customers') }}
),

unioned as (
    select * from crm
    union all
    select * from shop
),

final as (
    select
        source || ':' || record_id as record_key,
        *,
        -- What matching reads: when it changes, the record is re-linked on the next incremental run.
        md5(concat_ws('|', email_canonical, phone_e164, first_name_key, last_name_key, street_key, city, state,
                      postal_code, birth_date)) as match_fingerprint
    from unioned
)

select * from final
