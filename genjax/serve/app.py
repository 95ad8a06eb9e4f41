"""The Starlette application of ``genjax serve``: the page, the JSON API and the run pages.

    GET  /                        the page (prompt, model, sampler, steps, guidance, images, seed, ...)
    GET  /api/runs                the served runs and what each takes
    POST /api/generate            a request (JSON) -> 202 {"id", ...}, or 4xx {"error", "field"}
    GET  /api/jobs/{id}           its state: queued (position), running (elapsed, expected), done, error
    GET  /api/jobs/{id}/grid.png  its grid
    GET  /api/gallery             what was generated since the server started, newest first
    GET  /runs/{name}             a run's page: config.json, curves, sample grids, compare reports
    GET  /runs/{name}/files/{path} one of the files that page lists
"""

from __future__ import annotations

import html
import json
import pathlib

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from genjax.serve.engine import Engine, RequestError, ServedRun
from genjax.serve.page import PAGE, RUN_PAGE

#: The largest request body (an uploaded picture is small: a run's images are at most 64x64).
MAX_BODY = 1 << 20
#: Run-page files: pictures and compare reports, at most two folders deep.
_SHOWN = ("*.png", "*/*.png", "report.md", "*/report.md", "../report.md")


def _error(e: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(e), "field": e.field}, status_code=e.status)


def run_files(run: ServedRun) -> list[str]:
    """The files a run's page shows (relative to the run directory): its pictures (curves,
    samples, per stage) and the compare reports beside it."""
    rd = run.run_dir.resolve()
    found = []
    for pattern in _SHOWN:
        for p in sorted(rd.glob(pattern)):
            if p.is_file():
                found.append(str(pathlib.Path(pattern).parent / p.name) if pattern.startswith("..") else
                             str(p.relative_to(rd)))
    return list(dict.fromkeys(found))


def create_app(engine: Engine) -> Starlette:
    """The application serving ``engine``'s runs (the engine keeps running after the app stops;
    ``engine.close()`` ends its worker)."""

    async def page(request: Request):
        return HTMLResponse(PAGE)

    async def runs(request: Request):
        return JSONResponse([r.describe() for r in engine.runs.values()])

    async def generate(request: Request):
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(RequestError("image", f"the request is too large ({len(body)} bytes; at most {MAX_BODY})", 413))
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return _error(RequestError(None, "the request must be JSON"))
        try:
            job = await run_in_threadpool(engine.submit, payload)  # tokenizing and checks never block the loop
        except RequestError as e:
            return _error(e)
        return JSONResponse(engine.status(job.id), status_code=202)

    async def job(request: Request):
        status = engine.status(request.path_params["id"])
        if status is None:
            return JSONResponse({"error": f"no job {request.path_params['id']!r}", "field": None}, status_code=404)
        return JSONResponse(status)

    async def grid(request: Request):
        png = engine.grid(request.path_params["id"])
        if png is None:
            return JSONResponse({"error": "no grid (unknown job, or not done)", "field": None}, status_code=404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    async def gallery(request: Request):
        return JSONResponse(engine.gallery())

    def _run(request: Request) -> ServedRun | None:
        return engine.runs.get(request.path_params["name"])

    async def run_page(request: Request):
        run = _run(request)
        if run is None:
            return HTMLResponse(f"<p>no run {html.escape(request.path_params['name'])!r}</p>", status_code=404)
        files = run_files(run)
        base = f"/runs/{html.escape(run.name)}/files/"
        pictures = "".join(f'<figure><img src="{base}{html.escape(f)}" alt="{html.escape(f)}"><figcaption>'
                           f"{html.escape(f)}</figcaption></figure>" for f in files if f.endswith(".png"))
        reports = "".join(f"<h3>{html.escape(f)}</h3><pre>{html.escape((run.run_dir / f).read_text(errors='replace'))}</pre>"
                          for f in files if f.endswith(".md"))
        return HTMLResponse(RUN_PAGE.format(name=html.escape(run.name), model=html.escape(run.config["model"]),
                                            step=run.step, run_dir=html.escape(str(run.run_dir)),
                                            config=html.escape(json.dumps(run.config, indent=2)),
                                            pictures=pictures or "<p>none</p>", reports=reports or "<p>none</p>"))

    async def run_file(request: Request):
        run, path = _run(request), request.path_params["path"]
        if run is None or path not in run_files(run):  # only what the page lists: no path escapes the run
            return JSONResponse({"error": f"no such file {path!r}", "field": None}, status_code=404)
        return FileResponse(run.run_dir / path)

    return Starlette(routes=[
        Route("/", page), Route("/api/runs", runs), Route("/api/generate", generate, methods=["POST"]),
        Route("/api/jobs/{id}", job), Route("/api/jobs/{id}/grid.png", grid), Route("/api/gallery", gallery),
        Route("/runs/{name}", run_page), Route("/runs/{name}/files/{path:path}", run_file),
    ])
