{#- The SQL that DuckDB and Spark spell differently (docs/scale.md, "The plan for the models"): one macro per
    construct, dispatched on the adapter (duckdb__ / spark__ beside a default__), so no model exists twice. The
    DuckDB form is the one the models used before, character for character: DuckDB's output does not change.
    dbt's own cross-database macros (dbt.listagg, dbt.type_string, ...) are used where one exists. -#}

{#- True when the whole of `col` matches the regular expression `pattern`. -#}
{% macro regex_full_match(col, pattern) -%}
  {{ return(adapter.dispatch('regex_full_match', 'beacon')(col, pattern)) }}
{%- endmacro %}
{% macro default__regex_full_match(col, pattern) -%}regexp_full_match({{ col }}, {{ pattern }}){%- endmacro %}
{% macro spark__regex_full_match(col, pattern) -%}
  regexp_like({{ col }}, '^(?:' || {{ pattern }} || ')$')
{%- endmacro %}

{#- True when the regular expression `pattern` matches somewhere in `col`. -#}
{% macro regex_contains(col, pattern) -%}
  {{ return(adapter.dispatch('regex_contains', 'beacon')(col, pattern)) }}
{%- endmacro %}
{% macro default__regex_contains(col, pattern) -%}regexp_matches({{ col }}, {{ pattern }}){%- endmacro %}
{% macro spark__regex_contains(col, pattern) -%}regexp_like({{ col }}, {{ pattern }}){%- endmacro %}

{#- Every match of `pattern` in `col` replaced (DuckDB replaces the first unless given 'g'; Spark replaces all). -#}
{% macro regex_replace_all(col, pattern, replacement) -%}
  {{ return(adapter.dispatch('regex_replace_all', 'beacon')(col, pattern, replacement)) }}
{%- endmacro %}
{% macro default__regex_replace_all(col, pattern, replacement) -%}
  regexp_replace({{ col }}, {{ pattern }}, {{ replacement }}, 'g')
{%- endmacro %}
{% macro spark__regex_replace_all(col, pattern, replacement) -%}
  regexp_replace({{ col }}, {{ pattern }}, {{ replacement }})
{%- endmacro %}

{#- A field of a JSON text, as text (null when absent; an object or array comes back as its JSON). -#}
{% macro json_text(col, path) -%}
  {{ return(adapter.dispatch('json_text', 'beacon')(col, path)) }}
{%- endmacro %}
{% macro default__json_text(col, path) -%}json_extract_string({{ col }}, {{ path }}){%- endmacro %}
{% macro spark__json_text(col, path) -%}get_json_object({{ col }}, {{ path }}){%- endmacro %}

{#- A field of a JSON text, as JSON (DuckDB's json type; Spark keeps JSON as a string). -#}
{% macro json_value(col, path) -%}
  {{ return(adapter.dispatch('json_value', 'beacon')(col, path)) }}
{%- endmacro %}
{% macro default__json_value(col, path) -%}json_extract({{ col }}, {{ path }}){%- endmacro %}
{% macro spark__json_value(col, path) -%}get_json_object({{ col }}, {{ path }}){%- endmacro %}

{#- The JSON type of a column (DuckDB's json; Spark: a string). -#}
{% macro type_json() -%}
  {{ return(adapter.dispatch('type_json', 'beacon')()) }}
{%- endmacro %}
{% macro default__type_json() -%}json{%- endmacro %}
{% macro spark__type_json() -%}string{%- endmacro %}

{#- An interval of `n` days / hours, to add to or subtract from a timestamp. -#}
{% macro days_interval(n) -%}
  {{ return(adapter.dispatch('days_interval', 'beacon')(n)) }}
{%- endmacro %}
{% macro default__days_interval(n) -%}to_days({{ n }}){%- endmacro %}
{% macro spark__days_interval(n) -%}make_dt_interval({{ n }}, 0, 0, 0){%- endmacro %}

{% macro hours_interval(n) -%}
  {{ return(adapter.dispatch('hours_interval', 'beacon')(n)) }}
{%- endmacro %}
{% macro default__hours_interval(n) -%}to_hours({{ n }}){%- endmacro %}
{% macro spark__hours_interval(n) -%}make_dt_interval(0, {{ n }}, 0, 0){%- endmacro %}

{#- Whole days from `start` to `end` (day boundaries crossed: the difference of their dates). -#}
{% macro days_between(start, end) -%}
  {{ return(adapter.dispatch('days_between', 'beacon')(start, end)) }}
{%- endmacro %}
{% macro default__days_between(start, end) -%}date_diff('day', {{ start }}, {{ end }}){%- endmacro %}
{% macro spark__days_between(start, end) -%}datediff(cast({{ end }} as date), cast({{ start }} as date)){%- endmacro %}

{#- Whole seconds from `start` to `end` (second boundaries crossed). -#}
{% macro seconds_between(start, end) -%}
  {{ return(adapter.dispatch('seconds_between', 'beacon')(start, end)) }}
{%- endmacro %}
{% macro default__seconds_between(start, end) -%}date_diff('second', {{ start }}, {{ end }}){%- endmacro %}
{% macro spark__seconds_between(start, end) -%}
  (unix_seconds(cast(date_trunc('second', {{ end }}) as timestamp_ltz))
   - unix_seconds(cast(date_trunc('second', {{ start }}) as timestamp_ltz)))
{%- endmacro %}

{#- An ordering key of several columns, compared left to right (arg_max's / max_by's second argument). -#}
{% macro sort_key(columns) -%}
  {{ return(adapter.dispatch('sort_key', 'beacon')(columns)) }}
{%- endmacro %}
{% macro default__sort_key(columns) -%}({{ columns | join(', ') }}){%- endmacro %}
{% macro spark__sort_key(columns) -%}struct({{ columns | join(', ') }}){%- endmacro %}

{#- A struct of named fields: `fields` maps each name to its SQL expression, in order. -#}
{% macro struct_of(fields) -%}
  {{ return(adapter.dispatch('struct_of', 'beacon')(fields)) }}
{%- endmacro %}
{% macro default__struct_of(fields) -%}
  { {%- for name, expr in fields.items() %}'{{ name }}': {{ expr }}{{ ', ' if not loop.last }}{% endfor -%} }
{%- endmacro %}
{% macro spark__struct_of(fields) -%}
  named_struct({%- for name, expr in fields.items() %}'{{ name }}', {{ expr }}{{ ', ' if not loop.last }}{% endfor -%})
{%- endmacro %}

{#- True when the text `col` starts with `prefix`. -#}
{% macro text_starts_with(col, prefix) -%}
  {{ return(adapter.dispatch('text_starts_with', 'beacon')(col, prefix)) }}
{%- endmacro %}
{% macro default__text_starts_with(col, prefix) -%}starts_with({{ col }}, {{ prefix }}){%- endmacro %}
{% macro spark__text_starts_with(col, prefix) -%}startswith({{ col }}, {{ prefix }}){%- endmacro %}

{#- Unicode NFC, and the text without its accents (Spark: Beacon's functions, beacon.spark.session). -#}
{% macro nfc(col) -%}
  {{ return(adapter.dispatch('nfc', 'beacon')(col)) }}
{%- endmacro %}
{% macro default__nfc(col) -%}nfc_normalize({{ col }}){%- endmacro %}
{% macro spark__nfc(col) -%}beacon_nfc_normalize({{ col }}){%- endmacro %}

{% macro without_accents(col) -%}
  {{ return(adapter.dispatch('without_accents', 'beacon')(col)) }}
{%- endmacro %}
{% macro default__without_accents(col) -%}strip_accents({{ col }}){%- endmacro %}
{% macro spark__without_accents(col) -%}beacon_strip_accents({{ col }}){%- endmacro %}

{#- The distinct values of `col` in a group, sorted, joined by `sep` (an aggregate). -#}
{% macro sorted_distinct_list(col, sep) -%}
  {{ return(adapter.dispatch('sorted_distinct_list', 'beacon')(col, sep)) }}
{%- endmacro %}
{% macro default__sorted_distinct_list(col, sep) -%}string_agg(distinct {{ col }}, {{ sep }} order by {{ col }}){%- endmacro %}
{% macro spark__sorted_distinct_list(col, sep) -%}array_join(array_sort(collect_set({{ col }})), {{ sep }}){%- endmacro %}

{% macro microseconds_interval(n) -%}
  {{ return(adapter.dispatch('microseconds_interval', 'beacon')(n)) }}
{%- endmacro %}
{% macro default__microseconds_interval(n) -%}to_microseconds({{ n }}){%- endmacro %}
{% macro spark__microseconds_interval(n) -%}
  make_dt_interval(0, 0, 0, cast(cast({{ n }} as decimal(24, 0)) / 1000000 as decimal(18, 6)))
{%- endmacro %}
