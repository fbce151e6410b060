"""The ASGI app (`create_app`): collection, webhooks, unsubscribe and preferences, offers, privacy requests, health.

Requests never open the DuckDB warehouse: collected data is fsynced to the landing zone (loaded by the
DAGs) and offers come from an in-memory copy of a published snapshot. Logs name the route, status and
duration only: never a body, a query string or a header (they carry emails, tokens and keys).
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

from beacon.service import collect
from beacon.service.auth import rule
from beacon.service.config import ServiceConfig
from beacon.service.durable import DurableLog

log = logging.getLogger("beacon.service")


@dataclass
class State:
    config: ServiceConfig
    log: DurableLog
    limiter: collect.RateLimiter
    counters: Counter = field(default_factory=Counter)
    extras: dict = field(default_factory=dict)


class AccessLog:
    """Pure ASGI access line: method, route template (never the raw path: it may hold an email), status, ms."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            log.info("%s %s %s %.1fms", scope["method"], getattr(route, "path", "(unmatched)"), status.get("code", 500),
                     (time.perf_counter() - t0) * 1000)


def create_app(config: ServiceConfig, freeze_heap: bool = False) -> FastAPI:
    """The service over one configuration (tests and `beacon serve` build it the same way).

    `freeze_heap` (`beacon serve`): once started, the objects the imports and the start-up made are moved out of
    the garbage collector's reach (`gc.freeze`), so its full collections scan only what requests allocate and
    do not pause every request in flight for tens of milliseconds. Not for a test process, where the frozen
    objects of one app would never be freed."""
    from beacon.service import forms, offers, preferences, privacy, sms, webhooks

    state = State(config=config, log=DurableLog(config.landing_dir, rotate_seconds=config.rotate_seconds,
                                                 rotate_bytes=config.rotate_bytes),
                  limiter=collect.RateLimiter(config.limits.rate_events_per_second, config.limits.rate_burst))
    blocked = privacy.BlockedSet(config.landing_dir, config.privacy_key)
    store = offers.OfferStore(config.offers_snapshot, blocked=blocked)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.log.start()
        store.start()
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            store.stop()
            state.log.stop()

    app = FastAPI(title="Beacon service", version="1", lifespan=lifespan,
                  description="Segment-spec collection, email-service webhooks, one-click unsubscribe and the "
                              "preference centre, real-time offers. See docs/service.md.")
    app.state.beacon = state

    app.add_middleware(AccessLog)

    @app.get("/health", tags=["ops"], summary="Liveness and what the service holds", openapi_extra=rule("public"))
    async def health() -> dict:
        snap = store.current
        return {"status": "ok", "events_acknowledged": state.counters["events_acknowledged"],
                "offers_snapshot": None if snap is None else {"profiles": snap.profiles, "published": snap.version}}

    app.include_router(collect.router(state))
    app.include_router(webhooks.router(state))
    app.include_router(preferences.router(state))
    app.include_router(offers.router(state, store))
    app.include_router(forms.router(state))
    app.include_router(sms.router(state))
    app.include_router(privacy.router(state, blocked))
    return app
