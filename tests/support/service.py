"""The service tests' configuration document (secrets passed in, generated per test session)."""

from __future__ import annotations


def make_config(wk: str, sg_public: str, mg: str, pm: tuple[str, str], unsub: str, **extra) -> dict:
    return {"write_keys": {wk: "website"}, "sendgrid_public_key": sg_public, "mailgun_signing_key": mg,
            "postmark_user": pm[0], "postmark_password": pm[1], "unsubscribe_secret": unsub,
            "topics": {"marketing": "News and offers", "product_updates": "Product updates"},
            "limits": {"max_body_bytes": 200_000, "max_event_bytes": 32_000, "max_batch_events": 500},
            "rotate_seconds": 0.5, **extra}
