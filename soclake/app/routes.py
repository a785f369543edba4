"""The app's HTTP surface: the pages (one HTML shell per page, its script from static/) and the
JSON endpoints under /api/ that they call, documented in docs/app.md and listed at /api.
Every endpoint reads; none writes to the lake. Handlers are plain functions that Starlette
runs in its thread pool; errors become {"error": message} with a 4xx status."""
from __future__ import annotations

import functools
import html
import json
import re
import sys
import traceback
from pathlib import Path
from string import Template
from typing import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from soclake import __version__
from soclake.app import audit_numbers, console, guard, jobs, pool, samples
from soclake.app.jsonio import dumps
from soclake.app.shardfiles import media_type
from soclake.app.state import LakeView
from soclake.errors import SoclakeError
from soclake.lake.schemas import table_names

HERE = Path(__file__).resolve().parent
SHELL = Template((HERE / "shell.html").read_text())
IMMUTABLE = "public, max-age=31536000, immutable"
"""Levels and sample members are named by content (segment ids, fingerprints): never stale."""

PAGES = {"pool": "Pool", "segment": "Segment", "console": "SQL", "jobs": "Jobs", "run": "Run",
         "images": "Images", "grid": "Images", "sample": "Sample", "audit": "Audit"}


def json_response(value, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


def bytes_response(data: bytes, media: str, cache: str = IMMUTABLE, filename: str | None = None) -> Response:
    headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(data, media_type=media, headers=headers)


def handler(fn: Callable[[LakeView, Request], Response]) -> Callable[[Request], Response]:
    """A route endpoint: the app's LakeView passed in; AppError and SoclakeError answered as
    JSON errors; anything else a 500 naming its type (the traceback goes to the server's log)."""
    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        request.state.body = await request.body() if request.method == "POST" else b""
        return await run_in_threadpool(_answer, fn, request)
    return endpoint


def _answer(fn: Callable[[LakeView, Request], Response], request: Request) -> Response:
    try:
        return fn(request.app.state.view, request)
    except guard.AppError as e:
        return json_response({"error": e.message}, e.status)
    except SoclakeError as e:
        return json_response({"error": str(e)}, 400)
    except Exception as e:  # a bug or a damaged file: one line to the user, the traceback to the log
        traceback.print_exc(file=sys.stderr)
        return json_response({"error": f"internal error ({type(e).__name__}); see the app's log"}, 500)


def _int(request: Request, name: str, default: int | None, low: int = 0, high: int = 1 << 62) -> int | None:
    value = request.query_params.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise guard.bad(f"{name}={value[:40]!r} must be a whole number from {low} to {high}")
    return int(value)


# ---------------------------------------------------------------------------- pages
def page(name: str) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        view: LakeView = request.app.state.view
        text = SHELL.substitute(title=html.escape(PAGES[name]), page=name, lake=html.escape(view.lake.uri),
                                version=__version__)
        return Response(text, media_type="text/html", headers={"Cache-Control": "no-store"})
    return endpoint


# ---------------------------------------------------------------------------- /api
@handler
def api_index(view: LakeView, request: Request) -> Response:
    """The endpoints, each with its parameters in a line (docs/app.md has the reference)."""
    return json_response({"endpoints": [{"path": re.sub(r":\w+}", "}", r.path), "methods": sorted(r.methods - {"HEAD"}),
                                         "doc": " ".join((r.endpoint.__doc__ or "").split())} for r in API_ROUTES],
                          "docs": "docs/app.md"})


@handler
def api_lake(view: LakeView, request: Request) -> Response:
    """The lake: its URI, row counts per table, views and quality filters."""
    def make() -> dict:
        with view.locked() as lake:
            counts = {t: lake.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in table_names()}
            return {"uri": lake.uri, "tables": counts, "views": lake.views(), "filters": lake.filter_names(),
                    "version": __version__, "query_seconds": view.query_seconds}
    return json_response(view.remember(("lake",), make))


@handler
def api_pool_facets(view: LakeView, request: Request) -> Response:
    """Values the gallery's filters offer: views, sorts, sources and colours with counts."""
    return json_response(pool.facets(view))


@handler
def api_pool_categories(view: LakeView, request: Request) -> Response:
    """Category names starting with ?prefix=, most segments first (?limit=, at most 500)."""
    return json_response(pool.categories(view, request.query_params.get("prefix", ""), _int(request, "limit", 50, 1, 500)))


@handler
def api_pool_segments(view: LakeView, request: Request) -> Response:
    """One gallery page: filters view, source, category, subcategory, colour, min_side, max_side,
    distractor, sort; ?after= the previous page's next; ?limit= (100, at most 500); ?side= thumbnail size."""
    f = pool.filters_of(request.query_params)
    return json_response(pool.page(view, f, request.query_params.get("after"), _int(request, "limit", pool.PAGE, 1),
                                   _int(request, "side", pool.THUMB_SIDE, 1, pool.MAX_THUMB_SIDE)))


@handler
def api_pool_count(view: LakeView, request: Request) -> Response:
    """How many segments the gallery's filters (same parameters as /api/pool/segments) keep."""
    return json_response({"segments": pool.count(view, pool.filters_of(request.query_params))})


@handler
def api_segment(view: LakeView, request: Request) -> Response:
    """One segment: its row and category, levels with URLs, rejects and duplicates, jobs that used it."""
    return json_response(pool.segment(view, request.path_params["segment_id"]))


@handler
def api_segment_thumbnail(view: LakeView, request: Request) -> Response:
    """The smallest stored pyramid level at least ?side= px (default 128) on its longest side, as stored."""
    data = pool.thumbnail(view, request.path_params["segment_id"], _int(request, "side", pool.THUMB_SIDE, 1))
    return bytes_response(data, media_type(data))


@handler
def api_segment_level(view: LakeView, request: Request) -> Response:
    """Pyramid level INDEX of a segment (0 = the largest), as stored in its pack."""
    data = pool.level(view, request.path_params["segment_id"], request.path_params["index"])
    return bytes_response(data, media_type(data))


@handler
def api_jobs(view: LakeView, request: Request) -> Response:
    """Every run of every job: stage, fingerprint, progress, state, bytes, input run and outputs."""
    return json_response({"runs": jobs.runs(view)})


@handler
def api_job(view: LakeView, request: Request) -> Response:
    """One run (the job's current run without a fingerprint): row, job.json, lineage, shards, failures."""
    p = request.path_params
    run = jobs.find_run(view, p["job"], p.get("fingerprint"))
    return json_response(jobs.detail(view, run["job"], run["fingerprint"]))


@handler
def api_samples(view: LakeView, request: Request) -> Response:
    """A page of a run's samples (?after= image id, ?limit= 48) with thumbnail URLs and the total."""
    p = request.path_params
    return json_response(samples.page(view, p["job"], p["fingerprint"], _int(request, "after", None),
                                      _int(request, "limit", samples.PAGE, 1)))


@handler
def api_sample(view: LakeView, request: Request) -> Response:
    """One sample: image row, instances, member URLs, its views in the lineage, expressions, QA, captions."""
    p = request.path_params
    return json_response(samples.sample(view, p["job"], p["fingerprint"], p["key"]))


@handler
def api_sample_thumbnail(view: LakeView, request: Request) -> Response:
    """The sample's composite, at most 192 px."""
    p = request.path_params
    data = samples.thumbnail(view, p["job"], p["fingerprint"], p["key"])
    return bytes_response(data, media_type(data))


@handler
def api_sample_member(view: LakeView, request: Request) -> Response:
    """A member of the sample as stored in its shard (jpg, pan.png, fg.png, json, refexp.json; ?pretty=1 indents JSON)."""
    p = request.path_params
    data, media = samples.member(view, p["job"], p["fingerprint"], p["key"], p["member"],
                                 request.query_params.get("pretty") == "1")
    return bytes_response(data, media)


@handler
def api_audit(view: LakeView, request: Request) -> Response:
    """`soclake audit`'s numbers and plots: ?vocab= lvis|coco|none, ?job=, ?filter= (default: the
    job's, else filter_0), ?min_segments=."""
    q = request.query_params
    return json_response(audit_numbers.numbers(view, q.get("vocab", "lvis"), q.get("job") or None,
                                               q.get("filter") or None, _int(request, "min_segments", 10, 0)))


@handler
def api_sql(view: LakeView, request: Request) -> Response:
    """A query on the sandboxed read-only connection: GET ?q=&offset=&limit=, or POST a JSON
    {"sql", "offset", "limit"}; the first rows (at most --max-rows) kept for paging; a time limit."""
    if request.method == "POST":
        body = _json_body(request)
        sql, offset, limit = body.get("sql"), body.get("offset", 0), body.get("limit", 100)
        if not isinstance(offset, int) or not isinstance(limit, int):
            raise guard.bad("offset and limit must be whole numbers")
    else:
        sql, offset, limit = request.query_params.get("q"), _int(request, "offset", 0), _int(request, "limit", 100, 1)
    return json_response(console.page(view, sql, offset, limit))


@handler
def api_sql_download(view: LakeView, request: Request) -> Response:
    """The whole result of ?q= as ?format=csv|parquet (at most --max-download-rows rows)."""
    fmt = request.query_params.get("format", "csv")
    data = console.download(view, request.query_params.get("q"), fmt)
    return bytes_response(data, console.FORMATS.get(fmt, "application/octet-stream"), "no-store", f"result.{fmt}")


def _json_body(request: Request) -> dict:
    """A POST body: JSON only (a cross-site form cannot send it without a CORS preflight, which
    the app does not answer)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise guard.AppError(415, "POST a JSON body with Content-Type: application/json")
    body = request.state.body
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise guard.bad("the body is not JSON") from None
    if not isinstance(value, dict):
        raise guard.bad("the body must be a JSON object")
    return value


SEG = "{segment_id}"
RUN = "{job}/{fingerprint}"
API_ROUTES = [
    Route("/api", api_index),
    Route("/api/lake", api_lake),
    Route("/api/pool/facets", api_pool_facets),
    Route("/api/pool/categories", api_pool_categories),
    Route("/api/pool/segments", api_pool_segments),
    Route("/api/pool/count", api_pool_count),
    Route(f"/api/segments/{SEG}", api_segment),
    Route(f"/api/segments/{SEG}/thumbnail", api_segment_thumbnail),
    Route(f"/api/segments/{SEG}/levels/{{index:int}}", api_segment_level),
    Route("/api/jobs", api_jobs),
    Route("/api/jobs/{job}", api_job),
    Route(f"/api/jobs/{RUN}", api_job),
    Route(f"/api/jobs/{RUN}/samples", api_samples),
    Route(f"/api/jobs/{RUN}/samples/{{key}}", api_sample),
    Route(f"/api/jobs/{RUN}/samples/{{key}}/thumbnail", api_sample_thumbnail),
    Route(f"/api/jobs/{RUN}/samples/{{key}}/members/{{member}}", api_sample_member),
    Route("/api/audit", api_audit),
    Route("/api/sql", api_sql, methods=["GET", "POST"]),
    Route("/api/sql/download", api_sql_download),
]
PAGE_ROUTES = [
    Route("/", lambda request: RedirectResponse("/pool")),
    Route("/pool", page("pool")),
    Route(f"/segments/{SEG}", page("segment")),
    Route("/console", page("console")),
    Route("/jobs", page("jobs")),
    Route(f"/jobs/{RUN}", page("run")),
    Route("/images", page("images")),
    Route(f"/images/{RUN}", page("grid")),
    Route(f"/images/{RUN}/{{key}}", page("sample")),
    Route("/audit", page("audit")),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]
