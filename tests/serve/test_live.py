"""``genjax serve`` for real on 127.0.0.1 (uvicorn in a thread, one server for the module): a bounded
load test (N concurrent requests all answered, none lost, memory flat) and a headless Chromium that
types a prompt, submits, sees a grid, and whose shown seed and command line reproduce its pixels
through ``genjax sample`` (issue 23). ``GENJAX_SCREENSHOT=FILE`` saves the page as the browser saw it."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="genjax serve's web stack is not installed: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="genjax serve's web stack is not installed: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the load test's client (httpx) is not installed: pip install -e '.[test]'")

from genjax import serve  # noqa: E402
from tests.serve.conftest import png_pixels  # noqa: E402

#: the shape every request of the module has: one compiled sampler per batch size
SHAPE = {"run": "ldm", "num": 2, "guidance": 1.5, "sampler": "ddim", "steps": 3}


@pytest.fixture(scope="module")
def live(served_runs, tmp_path_factory):
    import uvicorn

    engine = serve.Engine([served_runs["ldm"]], max_batch=4, upload_dir=tmp_path_factory.mktemp("uploads"))
    server = uvicorn.Server(uvicorn.Config(serve.create_app(engine), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield engine, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    engine.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _wave(url: str, n: int, first_seed: int) -> list[dict]:
    """``n`` concurrent requests; returns each one's final status (polled over HTTP)."""
    def one(i):
        with httpx.Client(base_url=url, timeout=60) as client:
            r = client.post("/api/generate", json={**SHAPE, "prompt": f"a {i % 10}", "seed": first_seed + i})
            assert r.status_code == 202, r.text
            while (status := client.get(f"/api/jobs/{r.json()['id']}").json())["state"] in ("queued", "running"):
                time.sleep(0.05)
            assert client.get(status["grid"]).status_code == 200
            return status

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the memory from /proc (Linux)")
def test_concurrent_requests_are_all_answered_none_lost_memory_flat(live):
    engine, url = live
    n = 8
    first = _wave(url, n, 0)  # warm: compiles the sampler for the batch sizes it meets
    rss = _rss_mb()
    later = _wave(url, n, 100) + _wave(url, n, 200)
    grown = _rss_mb() - rss
    statuses = first + later
    assert [s["state"] for s in statuses] == ["done"] * 3 * n
    assert len({s["id"] for s in statuses}) == 3 * n and sorted(s["settings"]["seed"] for s in later) == \
        list(range(100, 100 + n)) + list(range(200, 200 + n))
    assert max(engine.batches) <= 4 and len(engine.batches) < 3 * n  # batched, at most max_batch per call
    assert engine.compilations <= 3  # one compiled sampler per batch size 1, 2, 4: never per request
    assert grown < 64, f"memory grew by {grown:.0f} MB over {2 * n} requests"


def test_a_real_browser_types_a_prompt_and_its_shown_seed_reproduces_the_pixels(live, chromium, reproduce):
    _, url = live
    chromium.call("Page.navigate", url=url + "/")
    chromium.wait_for("document.getElementById('run') && document.getElementById('run').options.length > 0", 30)
    # an unknown word: the page says which, and draws nothing
    chromium.type_into("prompt", "a purple 7")
    chromium.js("document.getElementById('submit').click()")
    assert "purple" in chromium.wait_for("document.getElementById('error').textContent", 30)
    chromium.js("document.getElementById('prompt').value = ''")
    chromium.type_into("prompt", "a thick 7")
    for field, value in (("guidance", "1.5"), ("num", "2"), ("steps", "3")):
        chromium.js(f"document.getElementById({field!r}).value = ''")
        chromium.type_into(field, value)
    chromium.js("document.getElementById('sampler').value = 'ddim'")
    chromium.js("document.getElementById('submit').click()")
    chromium.wait_for("!document.getElementById('result').classList.contains('hidden') && "
                      "document.getElementById('grid').complete && document.getElementById('grid').naturalWidth > 0", 120)
    assert chromium.js("document.getElementById('error').textContent") == ""
    seed = chromium.js("document.getElementById('result').dataset.seed")
    command = chromium.js("document.getElementById('command').textContent")
    assert f"--seed {seed} " in command and "--prompt 'a thick 7'" in command
    # the pixels the browser shows, read back from a canvas
    shown = chromium.js("""(() => { const img = document.getElementById('grid'); const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight; c.getContext('2d').drawImage(img, 0, 0);
        return c.toDataURL('image/png'); })()""")
    pixels = png_pixels(base64.b64decode(shown.split(",", 1)[1]))
    assert pixels.std() > 0
    np.testing.assert_array_equal(pixels, reproduce(command))
    chromium.wait_for("document.querySelectorAll('#gallery img').length > 0", 30)
    if os.environ.get("GENJAX_SCREENSHOT"):
        with open(os.environ["GENJAX_SCREENSHOT"], "wb") as f:
            f.write(chromium.screenshot())
