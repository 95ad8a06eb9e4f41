"""``genjax serve``'s API with Starlette's TestClient on the session's tiny ldm and unclip runs
(issue 23): batching onto a sampler compiled once per shape, the shown command line reproduces
the grid's pixels through ``genjax sample``, clear 4xx errors, the run pages, and a failing
draw that does not take the server down."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pytest

pytest.importorskip("starlette", reason="genjax serve's web stack is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx: pip install -e '.[test]'")

from starlette.testclient import TestClient  # noqa: E402

from genjax import serve  # noqa: E402
from tests.serve.conftest import png_pixels  # noqa: E402


@pytest.fixture(scope="module")
def server(served_runs, tmp_path_factory):
    """One engine (not started: the first test queues before the worker runs) and its app."""
    engine = serve.Engine(list(served_runs.values()), max_batch=2, upload_dir=tmp_path_factory.mktemp("uploads"),
                          start=False)
    yield engine, TestClient(serve.create_app(engine))
    engine.close()


def _png(array: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_requests_are_batched_on_one_compiled_sampler_and_reproduce_through_the_cli(server, reproduce):
    engine, client = server
    runs = {r["name"]: r for r in client.get("/api/runs").json()}
    assert runs["ldm"]["negative_prompt"] and not runs["ldm"]["variations"]
    assert runs["unclip"]["variations"] and not runs["unclip"]["negative_prompt"]
    # two requests of one shape, queued before the worker starts: one call of one compiled sampler
    first = [client.post("/api/generate", json={"run": "ldm", "prompt": p, "num": 2, "seed": s, "guidance": g,
                                                "sampler": "ddim", "steps": 3}) for p, s, g in (("a 7", 3, 2.0), ("a thick 1", 4, 0.5))]
    assert [r.status_code for r in first] == [202, 202]
    assert first[1].json()["position"] == 1  # queued behind the first
    engine.start()
    done = [engine.wait(r.json()["id"]) for r in first]
    assert [d["state"] for d in done] == ["done", "done"] and engine.batches == [2] and engine.compilations == 1
    # alone: a batch of one (compiled once more); then another weight and seed reuse that sampler
    for prompt, seed, weight in (("a 3", 9, 4.0), ("a thin 5", 10, 1.0)):
        again = client.post("/api/generate", json={"run": "ldm", "prompt": prompt, "num": 2, "seed": seed,
                                                   "guidance": weight, "sampler": "ddim", "steps": 3}).json()
        done.append(engine.wait(again["id"]))
    assert engine.compilations == 2 and engine.batches == [2, 1, 1]
    # a negative prompt (ldm), and unclip's variations of a test image and of an uploaded picture
    test0 = (np.asarray(served_runs_test_image(engine)) * 255).round().astype(np.uint8)
    for payload in ({"run": "ldm", "prompt": "a 7", "negative_prompt": "a thin 7", "num": 3, "seed": 5, "guidance": 3},
                    {"run": "unclip", "variations_of": "test:0", "num": 2, "seed": 1, "guidance": 2},
                    {"run": "unclip", "image": _png(test0), "num": 2, "seed": 1, "guidance": 2}):
        r = client.post("/api/generate", json=payload)
        assert r.status_code == 202, r.json()
        done.append(engine.wait(r.json()["id"]))
    shown = {}
    for d in done:
        assert d["state"] == "done", d
        grid = client.get(d["grid"])
        assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
        shown[d["id"]] = png_pixels(grid.content)
        assert shown[d["id"]].std() > 0  # a picture, not a blank
    # a batched one, the negative prompt and a variation, drawn again by their command lines (each a new process's
    # worth of loading and compiling: the others share these code paths)
    for d in (done[1], done[4], done[5]):
        np.testing.assert_array_equal(shown[d["id"]], reproduce(d["command"]), err_msg=d["command"])
    upload = done[6]["settings"]["variations_of"]
    assert upload.endswith(".png") and f"--variations-of {upload}" in done[6]["command"]
    np.testing.assert_array_equal(png_pixels(open(upload, "rb").read()), test0)  # the command's file: the picture sent
    gallery = client.get("/api/gallery").json()
    assert [g["id"] for g in gallery] == [d["id"] for d in reversed(done)]


def served_runs_test_image(engine):
    data = engine.runs["unclip"].data
    return data.test.images[0][..., 0] if hasattr(data.test, "images") else data.test[0][..., 0]


@pytest.mark.parametrize("payload, status, field, message", [
    ({"run": "ldm", "prompt": "a purple 7"}, 400, "prompt", "unknown word 'purple'"),
    ({"run": "ldm", "prompt": "a 7", "num": 17}, 400, "num", r"num must be an integer in \[1, 16\]"),
    ({"run": "ldm", "prompt": "a 7", "steps": 0}, 400, "steps", "steps out of range"),
    ({"run": "ldm", "prompt": "a 7", "sampler": "ddim", "steps": 50}, 400, "steps", "steps must be <= T=10 for DDIM"),
    ({"run": "ldm", "prompt": "a 7", "sampler": "langevin"}, 400, "sampler", "unknown sampler 'langevin'"),
    ({"run": "ldm", "guidance": 2}, 400, "guidance", "guidance needs a prompt"),
    ({"run": "ldm", "prompt": "a 7", "guidance": -1}, 400, "guidance", r"guidance must be a number in \[0, 100\]"),
    ({"run": "unclip", "prompt": "a 7", "negative_prompt": "a 1", "guidance": 2}, 400, "negative_prompt", "takes no negative prompt"),
    ({"run": "ldm", "variations_of": "test:0"}, 400, "variations_of", "cannot make variations"),
    ({"run": "unclip", "variations_of": "test:99999"}, 400, "variations_of", r"test:N with N in \[0, "),
    ({"run": "unclip", "image": _png(np.zeros((28, 28), np.uint8))}, 400, "image", "image must be 8x8 pixels .* got 28x28"),
    ({"run": "unclip", "image": "data:image/png;base64,bm90IGEgcGljdHVyZQ=="}, 400, "image", "not a readable picture"),
    ({"run": "nope"}, 400, "run", "unknown run 'nope'; served: ldm, unclip"),
    ({"run": "ldm", "colour": "red"}, 400, "colour", r"unknown field\(s\) \['colour'\]"),
    ([1, 2], 400, None, "must be a JSON object"),
])
def test_bad_requests_get_a_4xx_naming_what_is_wrong(server, payload, status, field, message):
    import re

    _, client = server
    r = client.post("/api/generate", json=payload)
    assert r.status_code == status and r.json()["field"] == field
    assert re.search(message, r.json()["error"]), r.json()


def test_other_bad_input_and_the_run_pages(server):
    engine, client = server
    assert client.post("/api/generate", content=b"{not json").status_code == 400
    assert client.post("/api/generate", content=b"x" * ((1 << 20) + 1)).status_code == 413
    assert client.get("/api/jobs/nope").status_code == 404 and client.get("/api/jobs/nope/grid.png").status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and 'id="prompt"' in page.text and 'id="negative_prompt"' in page.text
    run = client.get("/runs/ldm")
    assert run.status_code == 200 and '"model": "ldm"' in html.unescape(run.text) and "samples.png" in run.text
    assert client.get("/runs/ldm/files/samples.png").headers["content-type"] == "image/png"
    assert client.get("/runs/ldm/files/unet/metrics.jsonl").status_code == 404  # only the listed pictures/reports
    assert client.get("/runs/ldm/files/..%2Fconfig.json").status_code == 404
    assert client.get("/runs/nope").status_code == 404


def test_a_failing_draw_fails_its_job_and_the_server_goes_on(server, monkeypatch):
    engine, client = server
    engine.start()

    def broken(batch, size):
        raise FloatingPointError("simulated failure inside the sampler")

    monkeypatch.setattr(engine, "_draw", broken)
    bad = client.post("/api/generate", json={"run": "ldm", "prompt": "a 2", "num": 1, "seed": 0}).json()
    status = engine.wait(bad["id"])
    assert status["state"] == "error" and "simulated failure" in status["error"]
    monkeypatch.undo()
    ok = client.post("/api/generate", json={"run": "ldm", "prompt": "a 2", "num": 1, "seed": 0, "guidance": 1.0,
                                            "sampler": "ddim", "steps": 3}).json()
    assert engine.wait(ok["id"])["state"] == "done"
