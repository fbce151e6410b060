-- CRM companies (B2B accounts): latest version per company.
-- A table on Spark: a view there may not call the session's functions (nfc, beacon.spark.session).
{{ config(materialized='table' if target.type == 'spark' else 'view') }}
with source as (
    select * from {{ source('raw', 'crm_companies') }}
),

final as (
    select
        company_id,
        {{ clean_name('name') }} as company_name,
        lower(trim(domain)) as domain,
        industry,
        employees,
        country,
        created_at
    from source
    qualify row_number() over (partition by company_id order by _loaded_at desc, _line desc) = 1
)

select * from final
