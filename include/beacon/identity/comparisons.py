"""Splink comparisons per role: names (with swapped first/last), dates, addresses, one place hierarchy, typos."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from beacon.identity.model import LinkageConfig
from beacon.identity.roles import norm
from beacon.warehouse import quote_ident


def _location_comparison(roles: Mapping[str, str]):
    """One hierarchical comparison over postcode, city and state, so places implied by each other are not counted
    twice (a US zip implies its city and state); where they are independent (FEBRL) the joint level learns that."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    have = [r for r in ("postcode", "city", "state") if r in roles]
    both = " AND ".join
    null = both(f"({quote_ident(r + '_l')} IS NULL OR {quote_ident(r + '_r')} IS NULL)" for r in have)
    pc_eq, city_eq = '"postcode_l" = "postcode_r"', '"city_l" = "city_r"'
    pc_typo = f'{_edit_sql("postcode_l", "postcode_r")} <= 1'
    st_eq = '"state_l" = "state_r"'
    levels = [cll.CustomLevel(null, "no place on one side").configure(is_null_level=True)]
    if {"postcode", "city", "state"} <= set(have):
        levels.append(cll.CustomLevel(both([pc_eq, city_eq, st_eq]), "same postcode, city and state"))
    if {"postcode", "city"} <= set(have):
        levels.append(cll.CustomLevel(both([pc_eq, city_eq]), "same postcode and city"))
    if "postcode" in have:
        levels.append(cll.CustomLevel(pc_eq, "same postcode"))
    if {"postcode", "city"} <= set(have):
        levels.append(cll.CustomLevel(both([city_eq, pc_typo]), "same city, postcode one edit apart"))
    if {"city", "state"} <= set(have):
        levels.append(cll.CustomLevel(both([city_eq, st_eq]), "same city and state"))
    if "city" in have:
        levels.append(cll.CustomLevel(city_eq, "same city"))
        levels.append(cll.CustomLevel('jaro_winkler_similarity("city_l", "city_r") >= 0.9', "city similar"))
    if "postcode" in have:
        levels.append(cll.CustomLevel(pc_typo, "postcode one edit apart"))
    if "state" in have:
        levels.append(cll.CustomLevel(st_eq, "same state"))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(levels, output_column_name="place", comparison_description="postcode > city > state")


def _edit_sql(a: str, b: str) -> str:
    """Damerau-Levenshtein distance, computed only for pairs that Jaro-Winkler finds close (a one- or two-edit
    difference always is): DuckDB's damerau_levenshtein is ~40x slower than jaro_winkler_similarity."""
    return f"(CASE WHEN jaro_winkler_similarity({a}, {b}) >= 0.8 THEN damerau_levenshtein({a}, {b}) ELSE 99 END)"


def _typo_comparison(role: str, edits: Sequence[int], tf: bool = False):
    """Null, exact (optionally term-frequency adjusted), within k typos for each k, anything else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    exact = cll.ExactMatchLevel(role)
    if tf:
        exact = exact.configure(tf_adjustment_column=role)
    levels = [cll.NullLevel(role), exact]
    levels += [cll.CustomLevel(f'{_edit_sql(f"{role}_l", f"{role}_r")} <= {k}', f"{role} within {k} edit(s)")
               for k in edits]
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(levels, output_column_name=role, comparison_description=f"{role} with typos")


def _email_comparison():
    """Exact, nearly equal (a typo; Jaro-Winkler >= 0.97, which edit distance costs 40x more to find), else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(
        [cll.NullLevel("email"), cll.ExactMatchLevel("email"),
         cll.CustomLevel('jaro_winkler_similarity("email_l", "email_r") >= 0.97', "email nearly equal (typo)"),
         cll.ElseLevel()], output_column_name="email", comparison_description="email")


def _name_comparison(role: str, roles: Mapping[str, str], tf: bool):
    """Splink's NameComparison levels plus one for first and last name entered the other way round."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    other = "surname" if role == "given_name" else "given_name"
    exact = cll.ExactMatchLevel(role)
    if tf:
        exact = exact.configure(tf_adjustment_column=role)
    levels = [cll.NullLevel(role), exact, cll.JaroWinklerLevel(role, 0.92), cll.JaroWinklerLevel(role, 0.88)]
    if other in roles:
        levels.append(cll.CustomLevel(f"jaro_winkler_similarity({quote_ident(role + '_l')}, "
                                      f"{quote_ident(other + '_r')}) >= 0.88",
                                      f"{role} similar to the other record's {other} (swapped)"))
    levels += [cll.JaroWinklerLevel(role, 0.7), cll.ElseLevel()]
    return cl.CustomComparison(levels, output_column_name=role, comparison_description=f"{role} (name)")


def role_comparisons(roles: Mapping[str, str], extra: Sequence[str], cfg: LinkageConfig) -> list:
    """One comparison per role (place roles share one), then one per extra column."""
    import splink.comparison_library as cl

    tf = cfg.term_frequency
    out = []
    for role in roles:
        if role in ("given_name", "surname"):
            c = _name_comparison(role, roles, tf)
        elif role == "date_of_birth":
            c = cl.DateOfBirthComparison(role, input_is_string=True, datetime_format="%Y%m%d",
                                         invalid_dates_as_null=False)
        elif role in ("address_1", "address_2"):
            c = cl.JaroWinklerAtThresholds(role, [0.9, 0.7]).configure(term_frequency_adjustments=tf)
        elif role == "street_number":
            c = _typo_comparison(role, [1], tf)
        elif role in ("postcode", "city", "state"):
            continue  # one place comparison below
        elif role in ("phone", "national_id"):
            c = _typo_comparison(role, [1, 2])
        elif role == "email":
            # Exact or one typo only: Splink's EmailComparison also rewards equal usernames, which for
            # first.last@company addresses repeats the name evidence and links namesakes.
            c = _email_comparison()
        else:  # pragma: no cover - roles are validated in resolve_roles
            raise ValueError(role)
        out.append(c)
    if any(r in roles for r in ("postcode", "city", "state")):
        out.append(_location_comparison(roles))
    out += [cl.JaroWinklerAtThresholds(f"x_{norm(c)}", [0.9, 0.7]) for c in extra]
    return out
