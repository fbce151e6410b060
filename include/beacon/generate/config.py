"""The generator's knobs, its summary and the fixed shape of a world (files, block size, history)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

BLOCK = 50_000
DAY = 86_400
HISTORY_DAYS = 365

# Source tables written to the landing folder, with their file format.
FILES = {
    "crm_contacts": "csv",
    "crm_companies": "csv",
    "shop_customers": "csv",
    "shop_products": "csv",
    "shop_orders": "parquet",
    "shop_order_items": "parquet",
    "web_events": "jsonl",
    "email_events": "jsonl",
    "consent": "csv",
}



@dataclass(frozen=True)
class GenConfig:
    """Knobs of the generated world."""

    people: int = 20_000
    seed: int = 42
    day: int = 1
    as_of: date = date(2026, 6, 30)  # last calendar day covered by day 1
    # Days of history day 1 covers, ending at `as_of`: people sign up and act over them. A shorter history makes a
    # smaller world in days (fewer day partitions) with the same people; the models' training windows need
    # enough of it (ml.train: churn's training cutoff is 180 days back).
    history_days: int = HISTORY_DAYS
    bad_rate: float = 0.002  # share of rows per file that are bad (malformed, wrong type, missing key, ...)
    dup_rate: float = 0.05  # share of CRM people entered twice as separate contacts
    invalid_email_rate: float = 0.01  # share of CRM/shop emails that are not valid addresses
    new_people_rate: float = 0.01  # new people per day after day 1, as a share of `people`
    change_rate: float = 0.01  # CRM contacts changed per day after day 1

    def __post_init__(self) -> None:
        if self.history_days < 1:
            raise ValueError(f"history_days must be at least 1, not {self.history_days}")

    def day_date(self, day: int | None = None) -> date:
        d = self.day if day is None else day
        return self.as_of + timedelta(days=d - 1)

    def population(self, day: int | None = None) -> int:
        d = self.day if day is None else day
        return self.people + int(round(self.people * self.new_people_rate)) * (d - 1)


@dataclass
class GenSummary:
    """What one generator run wrote."""

    day: int
    date: str
    landing: str
    truth: str
    people_total: int
    people_new: int
    rows: dict[str, int] = field(default_factory=dict)
    bad_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

