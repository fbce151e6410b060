"""The Beacon page's FastAPI app, mounted by the Airflow plugin (plugins/beacon_page.py) at /beacon.

Airflow does not protect plugin endpoints: every route here resolves the caller through Airflow's own
`get_user` (the `Authorization: Bearer <JWT>` header, else the UI's `_token` session cookie, validated by the
configured auth manager) and asks the auth manager whether the user may see the page ("Beacon" custom view)
and whether they may see personal data (the same right as reading connections: op and admin roles with the
simple auth manager; masked for viewers, i.e. marketers). Privacy requests and their status are shown only to
users who may change connections (op and admin roles with the simple auth manager; never the marketer's viewer
role). Read-only: only GET routes, and the data comes from published files, never the warehouse
(beacon.ui.snapshot; the privacy requests' status files, beacon.privacy.queue).
"""


from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from beacon.ui.access import for_viewer
from beacon.ui.snapshot import load, privacy_requests

PAGE_RESOURCE = "Beacon"
TEMPLATES = Path(__file__).with_name("templates")


def airflow_user_dependency() -> Callable:
    """Airflow's own caller resolution (JWT header or session cookie, checked by the auth manager)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def rights(user: Any) -> tuple[bool, bool, bool]:
    """(may see the page, may see personal data, may see privacy requests) for an authenticated Airflow user, from
    the auth manager. Privacy requests: the right to change connections (op and admin, never a viewer)."""
    from airflow.api_fastapi.app import get_auth_manager

    am = get_auth_manager()
    page = am.is_authorized_custom_view(method="GET", resource_name=PAGE_RESOURCE, user=user)
    personal = am.is_authorized_connection(method="GET", user=user)
    admin = am.is_authorized_connection(method="PUT", user=user)
    return bool(page), bool(page and personal), bool(page and admin)


def _svg_line(history: list[dict], width: int = 160, height: int = 32) -> str:
    """A sparkline of the audience size per day (inline SVG: no script, no external asset)."""
    sizes = [h["size"] for h in history]
    if not sizes:
        return ""
    top = max(max(sizes), 1)
    step = width / max(len(sizes) - 1, 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(sizes))
    if len(sizes) == 1:
        pts = f"0,{height - 2 - (sizes[0] / top) * (height - 4):.1f} {width},{height - 2 - (sizes[0] / top) * (height - 4):.1f}"
    return (f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="size over time">'
            f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{pts}"/></svg>')


def _svg_interval(r: dict, width: int = 180, height: int = 18) -> str:
    """The lift's 95% interval as a bar around zero (a dot at the estimate; green or red when the interval
    excludes zero, grey when it does not). Inline SVG, the scale per row: zero is always drawn."""
    low, high, est = r.get("abs_low"), r.get("abs_high"), r.get("abs_lift")
    if low is None or high is None or est is None:
        return ""
    span = max(abs(low), abs(high), 1e-12) * 1.1

    def x(v: float) -> float:
        return width / 2 + (v / span) * (width / 2 - 4)

    color = "#1e7b34" if low > 0 else "#b42318" if high < 0 else "#7b8794"
    return (f'<svg class="interval" width="{width}" height="{height}" role="img" '
            f'aria-label="lift {est:.4g}, 95% interval {low:.4g} to {high:.4g}">'
            f'<line x1="{width / 2:.1f}" x2="{width / 2:.1f}" y1="1" y2="{height - 1}" stroke="#9aa5b1"/>'
            f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{height / 2}" y2="{height / 2}" stroke="{color}" '
            f'stroke-width="4"/><circle cx="{x(est):.1f}" cy="{height / 2}" r="4" fill="{color}"/></svg>')


def _fmt_lift(r: dict, key: str) -> str:
    """A lift or bound in the outcome's unit: percentage points for rates, money for revenue."""
    v = r.get(key)
    if v is None:
        return "—"
    return f"{100 * v:+.2f} pts" if r.get("binary") else f"{v:+,.2f}"


def render_page(view: dict | None, user_name: str, privacy: list[dict] | None = None) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["spark"] = _svg_line
    env.filters["interval"] = _svg_interval
    env.filters["lift"] = _fmt_lift
    return env.get_template("page.html").render(view=view, user=user_name, privacy=privacy)


def create_app(get_user: Callable | None = None, authorize: Callable[[Any], tuple] = rights,
               snapshot: Callable[[], dict | None] = load,
               requests: Callable[[], list[dict]] = privacy_requests) -> FastAPI:
    """The app; the hooks default to Airflow's user resolution, its auth manager (page, personal data and, when it
    says so, privacy requests), the published snapshot and the privacy requests' status files."""
    app = FastAPI(title="Beacon", docs_url=None, redoc_url=None, openapi_url=None)
    user_dep = get_user or airflow_user_dependency()

    def viewer(user: Annotated[Any, Depends(user_dep)]) -> tuple[Any, bool, bool]:
        page, personal, *admin = authorize(user)
        if not page:
            raise HTTPException(status_code=403, detail="your Airflow role may not see the Beacon page")
        return user, personal, bool(admin and admin[0])

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException):
        if "text/html" in request.headers.get("accept", "") and exc.status_code in (401, 403):
            msg = ("Sign in to Airflow to see the Beacon page." if exc.status_code == 401 else str(exc.detail))
            return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Beacon</title></head>"
                                f"<body><h1>Beacon</h1><p id=refused>{msg}</p></body></html>",
                                status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def page(v: Annotated[tuple, Depends(viewer)]) -> HTMLResponse:
        user, personal, admin = v
        data = snapshot()
        return HTMLResponse(render_page(for_viewer(data, personal) if data else None, _name(user),
                                        requests() if admin else None))

    @app.get("/api/summary")
    def summary(v: Annotated[tuple, Depends(viewer)]) -> JSONResponse:
        user, personal, _ = v
        data = snapshot()
        if data is None:
            raise HTTPException(status_code=404, detail="nothing published yet: run the activation DAG")
        return JSONResponse(for_viewer(data, personal))

    @app.get("/api/privacy-requests")
    def privacy(v: Annotated[tuple, Depends(viewer)]) -> JSONResponse:
        if not v[2]:
            raise HTTPException(status_code=403, detail="your Airflow role may not see privacy requests")
        return JSONResponse(requests())

    return app


def _name(user: Any) -> str:
    get = getattr(user, "get_name", None)
    return str(get() if callable(get) else user)
