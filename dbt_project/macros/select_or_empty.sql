{#- `columns` ({name: type}, in order) selected from `rel` (a source or ref) when it exists in the warehouse now,
    else an empty select of the same columns with those types (`varchar`: the engine's string type). For a staging view over a table another stage
    creates later (activation's log, the journeys engine's state): the view builds, empty and typed, before that
    table exists. -#}
{% macro select_or_empty(rel, columns) -%}
    {%- if relation_exists(rel) %}
select
    {{ columns.keys() | join(",\n    ") }}
from {{ rel }}
    {%- else %}
select
    {% for name, type in columns.items() -%}
    cast(null as {{ dbt.type_string() if type == 'varchar' else type }}) as {{ name }}{{ ",\n    " if not loop.last }}
    {%- endfor %}
where false
    {%- endif %}
{%- endmacro %}
