"""Column roles the linker understands (given name, surname, date of birth, ...) and how input columns map onto them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from beacon.identity.model import LinkageConfig

# Column roles the engine understands, with the column names (compared without case, spaces or underscores)
# that map to each role when roles are not given explicitly.
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "given_name": ("given_name", "first_name", "firstname", "forename", "fname", "first"),
    "surname": ("surname", "last_name", "lastname", "family_name", "lname", "last"),
    "date_of_birth": ("date_of_birth", "dob", "birth_date", "birthdate", "birthday", "date_birth"),
    "street_number": ("street_number", "house_number", "house_no", "street_no", "streetnr"),
    "address_1": ("address_1", "address1", "address_line1", "address_line_1", "street", "street_address",
                  "address"),
    "address_2": ("address_2", "address2", "address_line2", "address_line_2"),
    "city": ("suburb", "city", "town", "locality"),
    "postcode": ("postcode", "postal_code", "post_code", "zip", "zipcode", "zip_code"),
    "state": ("state", "region", "province"),
    "phone": ("phone", "phone_e164", "phone_number", "mobile", "telephone", "tel"),
    "email": ("email", "email_canonical", "email_address", "e_mail"),
    "national_id": ("soc_sec_id", "ssn", "social_security_number", "national_id", "nino"),
}
ROLES = tuple(ROLE_ALIASES)


def norm(name: str) -> str:
    """A column name compared without case, spaces or punctuation."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def detect_roles(columns: Sequence[str], exclude: Sequence[str] = ()) -> dict[str, str]:
    """Map roles to column names by name alone; the first column matching a role wins, unknown columns are left out."""
    alias_to_role = {norm(a): role for role, aliases in ROLE_ALIASES.items() for a in aliases}
    skip = {norm(c) for c in exclude}
    roles: dict[str, str] = {}
    for col in columns:
        role = alias_to_role.get(norm(col))
        if role and role not in roles and norm(col) not in skip:
            roles[role] = col
    return roles


def resolve_roles(df: pd.DataFrame, roles: Mapping[str, str] | None, id_col: str,
                  cfg: LinkageConfig) -> tuple[dict[str, str], list[str]]:
    """The roles to train on (given, or detected from the column names) and the extra columns to compare."""
    if id_col not in df.columns:
        raise ValueError(f"id column {id_col!r} not in the data (columns: {list(df.columns)})")
    found = dict(roles) if roles is not None else detect_roles(list(df.columns), exclude=[id_col])
    unknown = [r for r in found if r not in ROLE_ALIASES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; known roles: {list(ROLES)}")
    missing = [c for c in found.values() if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} given for roles are not in the data")
    used = set(found.values()) | {id_col}
    extra = [c for c in df.columns if c not in used] if cfg.unknown_columns == "compare" else []
    if len(found) + len(extra) < 2:
        raise ValueError(f"need at least two comparable columns, found roles {found} in {list(df.columns)}")
    return found, extra
