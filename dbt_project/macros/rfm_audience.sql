{#- Members of one RFM class (see int_customers_rfm_scored for the grid), with their scores. -#}
{% macro rfm_audience(rfm_segment) %}
with rfm as (
    select * from {{ ref('int_customers_rfm_scored') }} where rfm_segment = '{{ rfm_segment }}'
),

customers as (
    select customer_id, email, first_name from {{ ref('dim_customers') }} where is_email_valid
),

final as (
    select c.customer_id, c.email, c.first_name, r.recency_days, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score
    from rfm r
    join customers c using (customer_id)
)

select * from final
{% endmacro %}
