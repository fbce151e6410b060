{#- Privacy (docs/privacy.md "No resurrection"): staging never lets through a row of a person who asked to be erased
    or suppressed, even on a full refresh. A row is dropped when one of its e-mail, phone or identifier columns hashes
    to a tombstone (`privacy.tombstones`, keyed hashes: beacon.tombstones.sql_hash, which
    tests/privacy/test_tombstones.py keeps equal to privacy_hash below). The key never appears in the SQL: the
    dbt-duckdb plugin beacon.privacy.dbt_plugin sets the DuckDB variable beacon_privacy_key on dbt's connections.
    Before the privacy schema exists (no request yet) the filter is `true`. -#}
{#- Dispatched on the adapter (default__: DuckDB's SQL; spark__); rendered outside dbt with a stand-in adapter that
    has no `dispatch` (tests/privacy/test_tombstones.py), the DuckDB form. -#}
{% macro privacy_hash(kind, col) -%}
  {%- if adapter.dispatch is defined -%}{{ return(adapter.dispatch('privacy_hash', 'beacon')(kind, col)) }}
  {%- else -%}{{ default__privacy_hash(kind, col) }}{%- endif -%}
{%- endmacro %}

{% macro default__privacy_hash(kind, col) -%}
  {%- if kind == 'email' -%}
  sha256(getvariable('beacon_privacy_key') || ':email:' || nullif(lower(trim(cast({{ col }} as varchar))), ''))
  {%- elif kind == 'phone' -%}
  sha256(getvariable('beacon_privacy_key') || ':phone:' || case when length(regexp_replace(cast({{ col }} as varchar), '[^0-9]', '', 'g')) >= 7 then right(regexp_replace(cast({{ col }} as varchar), '[^0-9]', '', 'g'), 10) end)
  {%- elif kind == 'id' -%}
  sha256(getvariable('beacon_privacy_key') || ':id:' || nullif(trim(cast({{ col }} as varchar)), ''))
  {%- else -%}
  {{ exceptions.raise_compiler_error("privacy_hash: unknown kind " ~ kind) }}
  {%- endif -%}
{%- endmacro %}

{#- Spark: the same hash (sha2 256, hex), the key from the session variable beacon_privacy_key, which
    beacon.spark.session sets with a bound parameter (the key never appears in SQL text either). -#}
{% macro spark__privacy_hash(kind, col) -%}
  {%- set key = 'system.session.beacon_privacy_key' -%}
  {%- if kind == 'email' -%}
  sha2({{ key }} || ':email:' || nullif(lower(trim(cast({{ col }} as string))), ''), 256)
  {%- elif kind == 'phone' -%}
  sha2({{ key }} || ':phone:' || case when length(regexp_replace(cast({{ col }} as string), '[^0-9]', '')) >= 7 then right(regexp_replace(cast({{ col }} as string), '[^0-9]', ''), 10) end, 256)
  {%- elif kind == 'id' -%}
  sha2({{ key }} || ':id:' || nullif(trim(cast({{ col }} as string)), ''), 256)
  {%- else -%}
  {{ exceptions.raise_compiler_error("privacy_hash: unknown kind " ~ kind) }}
  {%- endif -%}
{%- endmacro %}

{#- The privacy key on this engine (null when none is configured), and a query error with `message`. -#}
{% macro privacy_key() -%}
  {%- if adapter.dispatch is defined -%}{{ return(adapter.dispatch('privacy_key', 'beacon')()) }}
  {%- else -%}{{ default__privacy_key() }}{%- endif -%}
{%- endmacro %}
{% macro default__privacy_key() -%}getvariable('beacon_privacy_key'){%- endmacro %}
{% macro spark__privacy_key() -%}system.session.beacon_privacy_key{%- endmacro %}

{% macro query_error(message) -%}
  {%- if adapter.dispatch is defined -%}{{ return(adapter.dispatch('query_error', 'beacon')(message)) }}
  {%- else -%}{{ default__query_error(message) }}{%- endif -%}
{%- endmacro %}
{% macro default__query_error(message) -%}error({{ message }}){%- endmacro %}
{% macro spark__query_error(message) -%}raise_error({{ message }}){%- endmacro %}

{#- `columns`: a list of [kind, column] (kind: email, phone or id). -#}
{% macro not_erased(columns) -%}
  {%- set tomb = adapter.get_relation(database=target.database, schema='privacy', identifier='tombstones')
      if execute else none -%}
  {%- if tomb is none -%}
  true
  {%- else -%}
  {#- Without the key nothing could be matched: a table model fails, naming the variable, rather than let anyone
      back. A view (read later by any connection, most without the key) filters where the key is set and otherwise
      shows the raw rows, which the erasure cleaned. -#}
  {%- if config.get('materialized') != 'view' %}
  case when {{ privacy_key() }} is null and exists (select 1 from {{ tomb }})
       then {{ query_error("'BEACON_PRIVACY_KEY is not set: privacy tombstones exist and cannot be matched (docs/privacy.md)'") }}
       else true end
  and {% endif -%}
  not ({% for c in columns %}coalesce({{ privacy_hash(c[0], c[1]) }} in (select key_hash from {{ tomb }}), false){% if not loop.last %}
       or {% endif %}{% endfor %})
  {%- endif -%}
{%- endmacro %}
