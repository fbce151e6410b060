{#- Normalization used by every staging model, so all sources agree on one form. -#}

{% macro normalized_email(col) -%}
  nullif(lower(trim({{ col }})), '')
{%- endmacro %}

{#- Valid: one @, no spaces, a dotted domain. Stricter checks (deliverability) belong to activation. -#}
{% macro is_valid_email(col) -%}
  coalesce(regexp_full_match({{ normalized_email(col) }}, '[a-z0-9._%+''-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}'), false)
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
    when regexp_full_match(regexp_replace({{ col }}, '[^0-9]', '', 'g'), '1?[2-9][0-9]{2}[2-9][0-9]{6}')
         and not regexp_matches({{ col }}, '[A-Za-z]')
         and (not contains({{ col }}, '+') or regexp_matches(trim({{ col }}), '^\+1[^0-9]*[2-9]'))
      then '+1' || right(regexp_replace({{ col }}, '[^0-9]', '', 'g'), 10)
    else beacon_e164({{ col }})
  end
{%- endmacro %}

{#- Display form of a name or address line: Unicode NFC, single spaces, trimmed. -#}
{% macro clean_name(col) -%}
  nullif(trim(regexp_replace(nfc_normalize({{ col }}), '\s+', ' ', 'g')), '')
{%- endmacro %}

{#- Matching form of a name: accents stripped, lower case, letters only (O'Neil = ONEIL = o neil). -#}
{% macro name_key(col) -%}
  nullif(regexp_replace(lower(strip_accents(nfc_normalize({{ col }}))), '[^a-z]', '', 'g'), '')
{%- endmacro %}

{#- Matching form of a street line: lower case, punctuation dropped, USPS suffix and direction
    abbreviations (Street = St, North = N), so "12 Oak Street" and "12 Oak St." agree. -#}
{% macro street_key(col) -%}
  {%- set words = {'street': 'st', 'avenue': 'ave', 'road': 'rd', 'boulevard': 'blvd', 'drive': 'dr',
                   'lane': 'ln', 'court': 'ct', 'place': 'pl', 'terrace': 'ter', 'parkway': 'pkwy',
                   'highway': 'hwy', 'circle': 'cir', 'square': 'sq', 'apartment': 'apt', 'suite': 'ste',
                   'north': 'n', 'south': 's', 'east': 'e', 'west': 'w'} -%}
  {%- set ns = namespace(expr="regexp_replace(lower(strip_accents(" ~ col ~ ")), '[^a-z0-9 ]', ' ', 'g')") -%}
  {%- for long, short in words.items() -%}
    {%- set ns.expr = "regexp_replace(" ~ ns.expr ~ ", '\\b" ~ long ~ "\\b', '" ~ short ~ "', 'g')" -%}
  {%- endfor -%}
  nullif(trim(regexp_replace({{ ns.expr }}, '\s+', ' ', 'g')), '')
{%- endmacro %}
