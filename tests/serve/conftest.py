"""``genjax serve`` fixtures: the session's tiny ldm and unclip runs restored once (as ``genjax
sample`` restores them), a helper that reproduces a grid with the command line the page shows,
and a headless Chromium driven over the DevTools protocol (skips where Chromium is absent)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import time

import numpy as np
import pytest


@pytest.fixture(scope="session")
def served_runs(tiny_ldm_run, tiny_unclip_run):
    """``{"ldm": ServedRun, "unclip": ServedRun}``, each restored once by ``cli._load_run``."""
    from genjax import cli
    from genjax.serve import ServedRun

    return {name: ServedRun.from_loaded(name, cli._load_run(str(rd))) for name, rd in
            (("ldm", tiny_ldm_run), ("unclip", tiny_unclip_run))}


def png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


@pytest.fixture
def reproduce(tmp_path, served_runs, monkeypatch):
    """``reproduce(command) -> pixels``: runs the ``genjax sample ...`` line a grid was shown with
    (its ``--out`` redirected) through the library's command line and reads the picture it writes.
    The run is not restored again: ``cli._load_run`` hands back the one the server restored with it."""
    from genjax import cli

    counter = itertools.count()
    restored = {str(r.run_dir): (r.run_dir, r.config, r.spec, r.data, r.model, r.params, r.step)
                for r in served_runs.values()}
    load = cli._load_run
    monkeypatch.setattr(cli, "_load_run", lambda rd, data_dir=None: restored.get(str(rd)) or load(rd, data_dir))

    def run(command: str) -> np.ndarray:
        argv = shlex.split(command)
        assert argv[:2] == ["genjax", "sample"] and argv[-2] == "--out", command
        out = tmp_path / f"reproduced-{next(counter)}.png"
        assert cli.main(argv[1:-1] + [str(out)]) == 0, command
        return png_pixels(out.read_bytes())

    return run


class Chromium:
    """A headless Chromium page driven over the DevTools protocol (one websocket, request/response by id)."""

    def __init__(self, binary: str, profile: pathlib.Path):
        from websockets.sync.client import connect

        self.proc = subprocess.Popen([binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1100,900",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        end, url = time.monotonic() + 60, None
        while url is None and time.monotonic() < end:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            url = m.group(1) if m else None
        if url is None:
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        import httpx

        port = url.split(":")[2].split("/")[0]
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"]
        self._connection = connect(pages[0]["webSocketDebuggerUrl"], max_size=1 << 26)
        self.ws = self._connection.__enter__()
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        out = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression!r}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{expression!r} stayed false for {timeout} s")

    def type_into(self, element_id: str, text: str) -> None:
        """Focuses an input and types ``text`` as keyboard input."""
        self.js(f"document.getElementById({element_id!r}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self._connection.__exit__(None, None, None)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it); skips without one."""
    pytest.importorskip("websockets", reason="the DevTools-protocol client (websockets) is not installed: pip install -e '.[test]'")
    binary = os.environ.get("GENJAX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium; .ci/run installs it): the real-browser test needs one")
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()
