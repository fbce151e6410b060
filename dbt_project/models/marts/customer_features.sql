-- Customer features as of a cutoff (var features_as_of, default the warehouse clock). The columns are
-- defined once, in macros/customer_features.sql, which the ML models read at their own cutoffs.
{% set as_of = var('features_as_of', none) %}
{% if as_of %}
    {% set cutoff = "timestamp '" ~ as_of ~ "'" %}
{% else %}
    {% set cutoff = "(select as_of_at from " ~ ref('warehouse_as_of') ~ ")" %}
{% endif %}
{{ customer_features_at(cutoff) }}
