{#- Incremental models partitioned by day (docs/scale.md, "Incremental by day"). A normal day rebuilds only the day
    partitions that can have changed; `dbt build --full-refresh` rebuilds everything and gives the same table
    (tests/dbt/test_incremental.py).

    The strategy replaces whole day partitions, never single rows, so the same model runs on an engine whose
    tables have no row-level merge: on DuckDB `delete+insert` keyed on the day column (every row of a day
    present in the new batch is deleted, then the batch inserted), which is what `insert_overwrite` with
    `partition_by` does on Spark. -#}
{% macro day_partitioned(partition_column) -%}
    {%- if target.type == 'spark' -%}
        {{ config(materialized='incremental', incremental_strategy='insert_overwrite',
                  partition_by=[partition_column], file_format='parquet', on_schema_change='fail') }}
    {%- else -%}
        {{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=partition_column,
                  on_schema_change='fail') }}
    {%- endif -%}
{%- endmacro %}

{#- The CTE `rebuilt_days(day)` of an incremental run: the days to rebuild from `source_cte` (a CTE of the
    model with `key`, `time_column` and the raw layer's `_loaded_at`; the model keeps `_loaded_at`).
      1. every day of a row loaded after the latest load the model holds (late events land in their own day),
      2. every day the model holds a row of such a row's key (a re-delivered or updated row replaces the old one
         there, even when its time moved to another day),
      3. the model's latest `beacon_lookback_days` days (a safety margin for rows written to the raw layer while
         the previous build ran, e.g. events posted to `beacon serve`).
    Counted from the data, never from the wall clock. -#}
{% macro rebuilt_days_cte(source_cte, key, time_column, partition_column) -%}
rebuilt_days as (
    select cast({{ time_column }} as date) as day from {{ source_cte }}
    where _loaded_at > (select coalesce(max(_loaded_at), cast('1900-01-01' as timestamp)) from {{ this }})
    union
    select t.{{ partition_column }} as day from {{ this }} as t
    where t.{{ key }} in (
        select {{ key }} from {{ source_cte }}
        where _loaded_at > (select coalesce(max(_loaded_at), cast('1900-01-01' as timestamp)) from {{ this }}))
    union
    select day from (
        select distinct {{ partition_column }} as day from {{ this }}
        order by day desc
        limit {{ var('beacon_lookback_days') }}
    ) as recent
)
{%- endmacro %}

{#- The CTE `scoped`: the rows of `source_cte` the run rebuilds — on an incremental run those of the rebuilt days
    (after the `rebuilt_days` CTE), otherwise all of them. -#}
{% macro day_scoped(source_cte, key, time_column, partition_column) -%}
{%- if is_incremental() %}
{{ rebuilt_days_cte(source_cte, key, time_column, partition_column) }},
{%- endif %}

scoped as (
    select * from {{ source_cte }}
    {%- if is_incremental() %}
    where cast({{ time_column }} as date) in (select day from rebuilt_days)
    {%- endif %}
)
{%- endmacro %}

{#- The rows of `relation` (deduplicated within the rebuilt days) that the rebuild writes: those whose key the
    model does not hold in a day it keeps (there the winner of that key already stands). -#}
{% macro not_kept_elsewhere(relation, key, partition_column) -%}
not exists (
    select 1 from {{ this }} as kept
    where kept.{{ key }} = {{ relation }}.{{ key }}
        and kept.{{ partition_column }} not in (select day from rebuilt_days)
)
{%- endmacro %}

{#- The days an aggregate by day must count again on an incremental run: those where `source_cte` (rows with
    `partition_column` and `_loaded_at`) and the model differ in the rows counted (`source_rows` against the model's
    `model_rows`) or the latest load. New and late rows, and rows aged out or erased in the source, change one or the
    other. No lookback is needed: the source is read as built in the same run. A day whose source rows all went has
    nothing to write; retention and erasure clean the model's own rows (beacon.privacy). -#}
{% macro changed_days(source_cte, source_rows, partition_column, model_rows) -%}
select coalesce(s.day, t.day) as day
from (
    select {{ partition_column }} as day, {{ source_rows }} as n, max(_loaded_at) as loaded
    from {{ source_cte }}
    group by {{ partition_column }}
) as s
full outer join (
    select {{ partition_column }} as day, {{ model_rows }} as n, max(_loaded_at) as loaded
    from {{ this }}
    group by {{ partition_column }}
) as t on s.day = t.day
where s.n is distinct from t.n or s.loaded is distinct from t.loaded
{%- endmacro %}
