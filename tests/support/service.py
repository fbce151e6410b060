"""The service tests' configuration document (secrets passed in, generated per test session)."""

from __future__ import annotations


def make_config(wk: str, sg_public: str, mg: str, pm: tuple[str, str], unsub: str, **extra) -> dict:
    return {"write_keys": {wk: "website"}, "sendgrid_public_key": sg_public, "mailgun_signing_key": mg,
            "postmark_user": pm[0], "postmark_password": pm[1], "unsubscribe_secret": unsub,
            "topics": {"marketing": "News and offers", "product_updates": "Product updates"},
            "limits": {"max_body_bytes": 200_000, "max_event_bytes": 32_000, "max_batch_events": 500},
            "rotate_seconds": 0.5, **extra}


def stored_events(svc) -> dict[str, dict]:
    """messageId -> the stored line, for every collected event in the service's spool files (the open `.part` file
    included). The service renames a `.part` file when it rotates it (every 0.5 s here), which can happen between
    listing and reading: the whole read starts again from a new listing then, since the renamed file holds the
    same lines."""
    import json

    for _ in range(100):
        out = {}
        try:
            for p in svc.files():
                if p.name.startswith("collected_events-"):
                    for line in p.read_text().splitlines():
                        if line.strip():
                            e = json.loads(line)
                            out[e["messageId"]] = e
        except FileNotFoundError:  # rotated while listed: list again
            continue
        return out
    raise RuntimeError("the spool kept changing under 100 listings")


def small_world(tmp_path_factory, name: str):
    """A generated, loaded small world with the marts journeys and measurement read (beacon.bench.service)."""
    from beacon.bench.service import build_small_world
    from beacon.config import override_env

    data = tmp_path_factory.mktemp(name)
    with override_env(BEACON_DATA_DIR=str(data)):
        build_small_world(data)
    return data
