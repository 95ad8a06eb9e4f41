"""``genjax serve``: a local web page to prompt the text-to-image models (ldm, ddpm-text, unclip)
and browse their runs.

The engine (:mod:`genjax.serve.engine`: checks, queue, batching, results) needs only the core
install; the web application (:mod:`genjax.serve.app`) needs the ``serve`` extra (Starlette,
uvicorn): ``pip install -e ".[serve]"``.
"""

from __future__ import annotations

from genjax.serve.engine import MAX_IMAGES, MAX_STEPS, Engine, RequestError, ServedRun, command_line

__all__ = ["MAX_IMAGES", "MAX_STEPS", "Engine", "RequestError", "ServedRun", "command_line", "create_app", "run_server"]

_MISSING = 'genjax serve needs the "serve" extra (Starlette and uvicorn): pip install -e ".[serve]"'


def create_app(engine: Engine):
    """The Starlette application serving ``engine``'s runs (:func:`genjax.serve.app.create_app`).

    Raises:
      ImportError: Starlette is not installed (the message says how to install it).
    """
    try:
        from genjax.serve import app
    except ImportError as e:
        raise ImportError(f"{_MISSING} ({e})") from None
    return app.create_app(engine)


def run_server(engine: Engine, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves ``engine``'s runs at ``http://host:port/`` with uvicorn until interrupted.

    Raises:
      ImportError: Starlette or uvicorn is not installed (the message says how to install them).
    """
    app = create_app(engine)
    try:
        import uvicorn
    except ImportError as e:
        raise ImportError(f"{_MISSING} ({e})") from None
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        engine.close()
