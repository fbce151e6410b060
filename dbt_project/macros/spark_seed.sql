{#- Seeds on Spark: dbt-spark's `session` method writes each value into the SQL as '<value>' without escaping it,
    so a seed text with an apostrophe (lead_point_rules: "the product's line") breaks the insert. Here each value
    is a literal whose apostrophes are spliced in as chr(39) (string literals keep backslashes on Beacon's Spark:
    spark.sql.parser.escapedStringLiterals), and an empty cell is null, as on DuckDB. Otherwise dbt-spark's own
    spark__load_csv_rows. -#}
{% macro spark_seed_literal(value) -%}
  {%- if value is none -%}null{%- else -%}'{{ (value | string).replace("'", "' || chr(39) || '") }}'{%- endif -%}
{%- endmacro %}

{% macro spark__load_csv_rows(model, agate_table) %}
  {% set batch_size = get_batch_size() %}
  {% set column_override = model['config'].get('column_types', {}) %}
  {% set statements = [] %}
  {% for chunk in agate_table.rows | batch(batch_size) %}
      {% set sql %}
          insert into {{ this.render() }} values
          {% for row in chunk -%}
              ({%- for col_name in agate_table.column_names -%}
                  {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
                  {%- set type = column_override.get(col_name, inferred_type) -%}
                    cast({{ spark_seed_literal(row[loop.index0]) }} as {{ type }})
                  {%- if not loop.last %},{%- endif %}
              {%- endfor -%})
              {%- if not loop.last %},{%- endif %}
          {%- endfor %}
      {% endset %}
      {% do adapter.add_query(sql, abridge_sql_log=True) %}
      {% if loop.index0 == 0 %}
          {% do statements.append(sql) %}
      {% endif %}
  {% endfor %}
  {{ return(statements[0]) }}
{% endmacro %}
