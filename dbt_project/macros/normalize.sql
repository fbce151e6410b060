{#- Normalization used by every staging model, so all sources agree on one form. -#}

{% macro normalized_email(col) -%}
  nullif(lower(trim({{ col }})), '')
{%- endmacro %}

{#- Valid: one @, no spaces, a dotted domain. Stricter checks (deliverability) belong to activation. -#}
{% macro is_valid_email(col) -%}
  coalesce({{ regex_full_match(normalized_email(col), "'[a-z0-9._%+''-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}'") }}, false)
{%- endmacro %}

{#- Matching-only form: plus-tags dropped everywhere, dots dropped for Gmail (which ignores them). -#}
{% macro canonical_email(col) -%}
  case when {{ is_valid_email(col) }} then
    case when split_part({{ normalized_email(col) }}, '@', 2) in ('gmail.com', 'googlemail.com')
         then replace(regexp_replace(split_part({{ normalized_email(col) }}, '@', 1), '\+.*$', ''), '.', '') || '@gmail.com'
         else regexp_replace(split_part({{ normalized_email(col) }}, '@', 1), '\+.*$', '') || '@' || split_part({{ normalized_email(col) }}, '@', 2)
    end
  end
{%- endmacro %}

{#- Phones to E.164. Plain North American digit strings take a SQL fast path that applies the NANP
    rules phonenumbers applies (area code and exchange start with 2-9), so a million rows stay fast;
    everything else (international formats, extensions, odd lengths) goes to phonenumbers through the
    beacon_e164() function the dbt-duckdb plugin registers (beacon.identity.normalize). -#}
{% macro phone_e164(col) -%}
  case
    when {{ col }} is null or trim({{ col }}) = '' then null
    when {{ regex_full_match(regex_replace_all(col, "'[^0-9]'", "''"), "'1?[2-9][0-9]{2}[2-9][0-9]{6}'") }}
         and not {{ regex_contains(col, "'[A-Za-z]'") }}
         and (not contains({{ col }}, '+') or {{ regex_contains('trim(' ~ col ~ ')', "'^\+1[^0-9]*[2-9]'") }})
      then '+1' || right({{ regex_replace_all(col, "'[^0-9]'", "''") }}, 10)
    else beacon_e164({{ col }})
  end
{%- endmacro %}

{#- Display form of a name or address line: Unicode NFC, single spaces, trimmed. -#}
{% macro clean_name(col) -%}
  nullif(trim({{ regex_replace_all(nfc(col), "'\s+'", "' '") }}), '')
{%- endmacro %}

{#- Matching form of a name: accents stripped, lower case, letters only (O'Neil = ONEIL = o neil). -#}
{% macro name_key(col) -%}
  nullif({{ regex_replace_all('lower(' ~ without_accents(nfc(col)) ~ ')', "'[^a-z]'", "''") }}, '')
{%- endmacro %}

{#- Matching form of a street line: lower case, punctuation dropped, USPS suffix and direction
    abbreviations (Street = St, North = N), so "12 Oak Street" and "12 Oak St." agree. -#}
{% macro street_key(col) -%}
  {%- set words = {'street': 'st', 'avenue': 'ave', 'road': 'rd', 'boulevard': 'blvd', 'drive': 'dr',
                   'lane': 'ln', 'court': 'ct', 'place': 'pl', 'terrace': 'ter', 'parkway': 'pkwy',
                   'highway': 'hwy', 'circle': 'cir', 'square': 'sq', 'apartment': 'apt', 'suite': 'ste',
                   'north': 'n', 'south': 's', 'east': 'e', 'west': 'w'} -%}
  {%- set ns = namespace(expr=regex_replace_all('lower(' ~ without_accents(col) ~ ')', "'[^a-z0-9 ]'", "' '")) -%}
  {%- for long, short in words.items() -%}
    {%- set ns.expr = regex_replace_all(ns.expr, "'\\b" ~ long ~ "\\b'", "'" ~ short ~ "'") -%}
  {%- endfor -%}
  nullif(trim({{ regex_replace_all(ns.expr, "'\s+'", "' '") }}), '')
{%- endmacro %}
