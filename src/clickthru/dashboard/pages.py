"""The dashboard's HTML pages, rendered from report data already loaded: no HTTP here.

The routes (``app``) check who asks, load the data and call these functions. Every URL in a
page is relative, so the dashboard works wherever it is mounted as long as each page is
served one level under the mount, with the overview at the mount itself: ``/dashboard/``,
``/dashboard/items``, ``/dashboard/static/dashboard.css``, and the API at ``/api/v1/``.

No inline script or style anywhere (the CSP is ``default-src 'self'``): the one script is
``static/live.js`` and it reads what it needs from ``data-*`` attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from clickthru.clock import DAY_MS
from clickthru.dashboard.charts import bar_chart, format_number, format_percent, line_chart
from clickthru.dashboard.verdict import verdict
from clickthru.reports import Counts, Experiment, Health, Row

PRODUCT = "clickthru"
# page -> (title, relative URL, the grouping of its report's CSV; None: the health report)
PAGES: dict[str, tuple[str, str, str | None]] = {
    "overview": ("Overview", "./", "day"),
    "placements": ("Placements", "placements", "placement"),
    "items": ("Items", "items", "item"),
    "positions": ("Positions", "positions", "position"),
    "experiments": ("Experiments", "experiments", "experiment"),
    "health": ("Health", "health", None),
}
# the report CSVs every page links to, and the raw event exports
EXPORTS = (
    ("day", "Per day"),
    ("placement", "Per placement"),
    ("item", "Per item"),
    ("position", "Per position"),
)
RAW_FORMATS = ("csv", "ndjson")
MAX_BARS = 20  # the tables below the charts list every row
LATEST_LIMIT = 20  # rows live.js keeps in the latest-clicks table
ERROR_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found"}


def utc_time(ms: int) -> str:
    """Unix ms -> '2024-11-28 10:15:03', in UTC like every time on the dashboard."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_label(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


env = Environment(
    loader=PackageLoader("clickthru.dashboard"),
    autoescape=True,
    undefined=StrictUndefined,  # a misspelt variable fails the tests instead of rendering ""
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["count"] = format_number
env.filters["percent"] = format_percent
env.filters["utc"] = utc_time
env.filters["iso"] = iso_time
env.globals["product"] = PRODUCT


def render_sign_in(error: str | None, csrf_token: str, next_url: str) -> str:
    """The sign-in form; it POSTs name, password, csrf and next to ``sign-in``."""
    return env.get_template("sign_in.html").render(
        root="", error=error, csrf_token=csrf_token, next_url=next_url
    )


def render_error(status: int, message: str, *, root: str = "") -> str:
    """A 403 or 404 page. ``root`` leads from the requested URL back to the mount ('../'
    when the path is two levels deep) so the stylesheet and the way back still resolve."""
    title = ERROR_TITLES.get(status, "Something went wrong")
    return env.get_template("error.html").render(
        root=root, status=status, title=title, message=message
    )


def render_erased(site: str, removed: Mapping[str, int]) -> str:
    """What erasing a site removed, by table."""
    return env.get_template("erased.html").render(
        root="", site=site, removed=sorted(removed.items())
    )


def render_page(
    page: str,
    *,
    user: str,
    is_operator: bool,
    sites: Sequence[str],
    site: str,
    since: str,
    until: str,
    bots: bool,
    csrf_token: str,
    data: Mapping[str, Any],
    counted_until: int | None = None,
) -> str:
    """One of the report pages; ``site`` "" means all of ``sites``; ``counted_until``
    (unix ms): every event received before it is in the counters shown.

    ``data`` holds the page's reports, by page:
    overview ``{"totals": Counts, "series": list[Row] per day, "latest": list[Click]}``;
    placements, items, positions ``{"rows": list[Row]}``; health ``{"health": Health}``;
    experiments ``{"experiment": Experiment}``.
    Raises ValueError for an unknown page, KeyError for missing data.
    """
    if page not in PAGES:
        raise ValueError(f"no dashboard page named {page!r}")
    choice = {"site": site, "since": since, "until": until, "bots": "1" if bots else ""}
    query = urlencode({name: value for name, value in choice.items() if value})
    report = {
        "overview": _overview,
        "placements": _placements,
        "items": _items,
        "positions": _positions,
        "health": _health,
        "experiments": _experiments,
    }[page](data)
    return env.get_template(f"{page}.html").render(
        root="",
        title=PAGES[page][0],
        nav=[
            {"title": title, "href": f"{href}?{query}" if query else href, "current": name == page}
            for name, (title, href, _) in PAGES.items()
        ],
        user=user,
        is_operator=is_operator,
        sites=sites,
        site=site,
        since=since,
        until=until,
        bots=bots,
        csrf_token=csrf_token,
        csv=_csv_link(choice, PAGES[page][2]),
        exports=[(label, _csv_link(choice, by)) for by, label in EXPORTS],
        raw_exports=[
            (kind.upper(), _api_link("export", choice, format=kind)) for kind in RAW_FORMATS
        ],
        conversion_exports=[
            (label, _api_link("conversions", choice, by=by, format="csv"))
            for by, label in (*EXPORTS, ("variant", "Per variant"))
        ],
        outcome_exports=[
            (kind.upper(), _api_link("outcomes", choice, format=kind)) for kind in RAW_FORMATS
        ],
        latest_source=_api_link("latest", {"site": site, "bots": choice["bots"]}),
        latest_limit=LATEST_LIMIT,
        counted_until=counted_until,
        **report,
    )


def _api_link(endpoint: str, params: Mapping[str, str], **more: str) -> str:
    query = urlencode({name: value for name, value in {**params, **more}.items() if value})
    return f"../api/v1/{endpoint}?{query}" if query else f"../api/v1/{endpoint}"


def _csv_link(choice: Mapping[str, str], by: str | None) -> str:
    """A report as CSV; without a grouping, the health report's rejects by reason."""
    if by is None:
        return _api_link("health", choice, format="csv")
    if by == "experiment":
        return _api_link("experiment", choice, format="csv")
    return _api_link("report", choice, by=by, format="csv")


def _overview(data: Mapping[str, Any]) -> dict[str, object]:
    totals: Counts = data["totals"]
    days = _every_day(data["series"])
    return {
        "totals": totals,
        "latest": data["latest"],
        "volume_chart": _chart(
            line_chart(
                {
                    "Views": [(day, counts.views) for day, counts in days],
                    "Clicks": [(day, counts.clicks) for day, counts in days],
                },
                title="Views and clicks per day",
                x_labels=day_label,
            )
        ),
        "ctr_chart": _chart(
            line_chart(
                {"CTR": [(day, counts.ctr) for day, counts in days]},
                title="Click-through rate per day",
                x_labels=day_label,
                y_format=format_percent,
            )
        ),
    }


def _placements(data: Mapping[str, Any]) -> dict[str, object]:
    rows: list[Row] = data["rows"]
    by_clicks = sorted(rows, key=lambda row: row.counts.clicks, reverse=True)
    return {
        "rows": rows,
        "clicks_chart": _chart(
            bar_chart(_bars(by_clicks), title=_top_title("Clicks per placement", rows))
        ),
    }


def _items(data: Mapping[str, Any]) -> dict[str, object]:
    rows: list[Row] = data["rows"]  # already the top items, in the order to show
    return {
        "rows": rows,
        "clicks_chart": _chart(bar_chart(_bars(rows), title=_top_title("Clicks per item", rows))),
    }


def _positions(data: Mapping[str, Any]) -> dict[str, object]:
    rows = sorted(data["rows"], key=lambda row: int(row.key))
    return {
        "rows": rows,
        "curve_chart": _chart(
            line_chart(
                {"CTR at position": [(int(row.key), row.counts.ctr) for row in rows]},
                title="Click-through rate by position",
                y_format=format_percent,
                element_id="position-curve",
            )
        ),
        "clicks_chart": _chart(bar_chart(_bars(rows), title="Clicks per position")),
    }


def _health(data: Mapping[str, Any]) -> dict[str, object]:
    health: Health = data["health"]
    reasons = sorted(health.rejects_by_reason, key=lambda reason: reason[1], reverse=True)
    return {
        "health": health,
        "reasons": reasons,
        "rejects_chart": _chart(bar_chart(reasons, title="Rejected events by reason")),
    }


def _experiments(data: Mapping[str, Any]) -> dict[str, object]:
    experiment: Experiment = data["experiment"]
    bars = [(v.variant or "(none)", v.ctr or 0.0) for v in experiment.variants]
    return {
        "experiment": experiment,
        "verdict": verdict(experiment),
        "ctr_chart": _chart(
            bar_chart(bars, title="Click-through rate per variant", value_format=format_percent)
        ),
    }


def _every_day(series: Sequence[Row]) -> list[tuple[int, Counts]]:
    """Each day from the first row to the last: a day without a row had no events, so its
    counts are zero (and its CTR a gap, not 0 %)."""
    by_day = {int(row.key): row.counts for row in series}
    if not by_day:
        return []
    first, last = min(by_day), max(by_day)
    days = range(first, last + 1, DAY_MS)
    if len(days) > 3660 or any((day - first) % DAY_MS for day in by_day):
        return sorted(by_day.items())  # not whole days after all: draw just what there is
    return [(day, by_day.get(day, Counts())) for day in days]


def _bars(rows: Sequence[Row]) -> list[tuple[str, float]]:
    return [(str(row.key), row.counts.clicks) for row in rows[:MAX_BARS]]


def _top_title(title: str, rows: Sequence[Row]) -> str:
    return f"{title}, top {MAX_BARS}" if len(rows) > MAX_BARS else title


def _chart(svg: str) -> Markup:
    """charts.py escapes every label itself; Markup keeps Jinja from escaping the SVG again."""
    return Markup(svg)
