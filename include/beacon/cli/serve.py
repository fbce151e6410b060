"""`beacon serve`: run the service (collection, webhooks, unsubscribe, preferences, offers) under uvicorn."""

from __future__ import annotations

import argparse


def cmd_serve(args) -> int:
    import logging

    import uvicorn

    from beacon.service.app import create_app
    from beacon.service.config import load_config

    # The app's own access line (route template, status, duration): never bodies, queries or headers.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    svc_log = logging.getLogger("beacon.service")
    svc_log.addHandler(handler)
    svc_log.setLevel(args.log_level.upper())
    app = create_app(load_config(), freeze_heap=True)
    # No access log: uvicorn's would print query strings (unsubscribe tokens, ids); the app logs route templates.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level=args.log_level,
                timeout_graceful_shutdown=10)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run Beacon's HTTP service (collection, webhooks, unsubscribe, offers)",
                       description="Serve the Segment-spec collection API, email-service webhooks, one-click "
                                   "unsubscribe, the preference centre and real-time offers (docs/service.md). "
                                   "Secrets come from BEACON_SERVICE_CONFIG or the beacon_service connection.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)
