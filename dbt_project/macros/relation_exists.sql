{#- True when `rel` (a source or ref) exists in the warehouse now; false while parsing. Lets a model read a table
    another stage creates later (activation's log, the journeys engine's state) without failing before it exists. -#}
{% macro relation_exists(rel) -%}
  {{- return(execute and adapter.get_relation(database=rel.database, schema=rel.schema,
                                              identifier=rel.identifier) is not none) -}}
{%- endmacro %}
