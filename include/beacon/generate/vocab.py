"""Vocabularies the people are drawn from: names with their frequencies, places, domains, industries."""

from __future__ import annotations

import numpy as np
from faker.providers.address.en_US import Provider as _Address
from faker.providers.person.en_US import Provider as _Person
from nicknames import NickNamer

_FIRST_F = np.array(list(_Person.first_names_female.keys()))
_FIRST_F_W = np.array(list(_Person.first_names_female.values()), dtype=float)
_FIRST_M = np.array(list(_Person.first_names_male.keys()))
_FIRST_M_W = np.array(list(_Person.first_names_male.values()), dtype=float)
_LAST = np.array(list(_Person.last_names.keys()))
_LAST_W = np.array(list(_Person.last_names.values()), dtype=float)
_STREET_WORDS = np.array(sorted(set(_Person.last_names.keys()))[:400] + [
    "Oak", "Maple", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Main", "Church", "Spring",
])
# Full street suffix -> the abbreviations people and systems actually type (USPS Pub. 28 style).
_SUFFIX = np.array(["Street", "Avenue", "Road", "Boulevard", "Drive", "Lane", "Court", "Place", "Terrace", "Parkway"])
_SUFFIX_ABBR = np.array(["St", "Ave", "Rd", "Blvd", "Dr", "Ln", "Ct", "Pl", "Ter", "Pkwy"])
_STATES = np.array(list(_Address.states_abbr)[:50])
# (city, state, first three zip digits, phone area code): real combinations, so phone numbers validate.
_PLACES = [
    ("New York", "NY", "100", "212"), ("Brooklyn", "NY", "112", "718"), ("Los Angeles", "CA", "900", "213"),
    ("San Francisco", "CA", "941", "415"), ("San Diego", "CA", "921", "619"), ("Chicago", "IL", "606", "312"),
    ("Houston", "TX", "770", "713"), ("Dallas", "TX", "752", "214"), ("Austin", "TX", "787", "512"),
    ("Phoenix", "AZ", "850", "602"), ("Philadelphia", "PA", "191", "215"), ("Seattle", "WA", "981", "206"),
    ("Denver", "CO", "802", "303"), ("Boston", "MA", "021", "617"), ("Atlanta", "GA", "303", "404"),
    ("Miami", "FL", "331", "305"), ("Orlando", "FL", "328", "407"), ("Portland", "OR", "972", "503"),
    ("Minneapolis", "MN", "554", "612"), ("Detroit", "MI", "482", "313"), ("Columbus", "OH", "432", "614"),
    ("Charlotte", "NC", "282", "704"), ("Raleigh", "NC", "276", "919"), ("Nashville", "TN", "372", "615"),
    ("Las Vegas", "NV", "891", "702"), ("Salt Lake City", "UT", "841", "801"), ("Kansas City", "MO", "641", "816"),
    ("St. Louis", "MO", "631", "314"), ("Pittsburgh", "PA", "152", "412"), ("Baltimore", "MD", "212", "410"),
]
# The IANA time zone of each place above (same order): people read email on local time.
_TZ = np.array([
    "America/New_York", "America/New_York", "America/Los_Angeles", "America/Los_Angeles", "America/Los_Angeles",
    "America/Chicago", "America/Chicago", "America/Chicago", "America/Chicago", "America/Phoenix", "America/New_York",
    "America/Los_Angeles", "America/Denver", "America/New_York", "America/New_York", "America/New_York",
    "America/New_York", "America/Los_Angeles", "America/Chicago", "America/Detroit", "America/New_York",
    "America/New_York", "America/New_York", "America/Chicago", "America/Los_Angeles", "America/Denver",
    "America/Chicago", "America/Chicago", "America/New_York", "America/New_York",
])
# When people check their email (local hour): before work, at lunch, in the evening, or any time.
_HOUR_W = np.array([0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 2.5, 5.5, 6.0, 3.0, 1.5, 2.0, 5.5, 3.0, 1.5, 1.5, 1.5, 2.0,
                    3.5, 6.0, 6.5, 4.5, 2.0, 0.6])
_CITY = np.array([p[0] for p in _PLACES])
_STATE = np.array([p[1] for p in _PLACES])
_ZIP3 = np.array([p[2] for p in _PLACES])
_AREA = np.array([p[3] for p in _PLACES])
_DOMAINS = np.array(["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "proton.me"])
_DOMAIN_W = np.array([0.42, 0.14, 0.12, 0.1, 0.1, 0.07, 0.05])
_INDUSTRIES = np.array(["Software", "Retail", "Healthcare", "Finance", "Manufacturing", "Education", "Media", "Logistics"])
_CO_SUFFIX = np.array(["Inc", "LLC", "Group", "Partners", "Labs", "Systems", "Co", "Holdings"])
_TITLES = np.array(["Marketing Manager", "VP Marketing", "CTO", "Engineer", "Founder", "Operations Lead",
                    "Sales Director", "Analyst", "Head of Growth", "Procurement Manager"])
_CATEGORIES = np.array(["apparel", "footwear", "accessories", "home", "beauty", "electronics"])
_PRODUCT_LINES = np.array(["consumer", "consumer", "consumer", "consumer", "pro", "enterprise"])


def _nickname_table() -> dict[str, str]:
    """Map lowercase first names to one common nickname (from the curated `nicknames` data set)."""
    nn = NickNamer()
    out: dict[str, str] = {}
    for name in set(_FIRST_F) | set(_FIRST_M):
        nicks = sorted(n for n in nn.nicknames_of(name.lower()) if len(n) >= 3)
        if nicks:
            out[name] = nicks[0].capitalize()
    return out


_NICK = _nickname_table()
