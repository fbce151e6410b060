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

{#- North American numbers to E.164: 10 digits, or 11 starting with 1. Others stay null. -#}
{% macro phone_e164_nanp(col) -%}
  case
    when length(regexp_replace(coalesce({{ col }}, ''), '[^0-9]', '', 'g')) = 10
      then '+1' || regexp_replace({{ col }}, '[^0-9]', '', 'g')
    when length(regexp_replace(coalesce({{ col }}, ''), '[^0-9]', '', 'g')) = 11
         and regexp_replace({{ col }}, '[^0-9]', '', 'g') like '1%'
      then '+' || regexp_replace({{ col }}, '[^0-9]', '', 'g')
  end
{%- endmacro %}

{% macro clean_name(col) -%}
  nullif(trim(regexp_replace({{ col }}, '\s+', ' ', 'g')), '')
{%- endmacro %}
