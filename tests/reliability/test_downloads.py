"""Download faults against a local ``http.server`` on 127.0.0.1 (no internet): each one
leaves no file behind (no ``.part`` either) and its error names the cause.

``tests/data/test_download.py`` covers: wrong checksum, HTTP 404/500, a body shorter
than its Content-Length, connection refused, fetch's mirror fallback. Added here: a
connection dropped mid-body without Content-Length, a server that never answers
(timeout), a redirect to a 404, a full disk while writing, Ctrl-C mid-download, every
mirror failing differently through ``fetch`` (the data directory stays empty), a
bad-then-good mirror sequence, and the CLI's one-line error when MNIST cannot be fetched.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import os
import pathlib
import sys
import threading
import time

import pytest

from genjax import cli
from genjax.data import download as dl


U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py
NAME = "t10k-labels-idx1-ubyte.gz"
BODY = bytes(range(256)) * 64  # 16 KiB
SHA = hashlib.sha256(BODY).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """/ok/<f>: the body; /status/<code>/<f>; /drop/<f>: half the body, no Content-Length, then
    the connection closes; /hang/<f>: never answers; /redirect404/<f>: 302 to a 404;
    /other/<f>: a different body (checksum mismatch)."""

    hang = threading.Event()

    def log_message(self, *a):
        pass

    def _send(self, body: bytes, length: bool = True):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        kind = parts[0]
        if kind == "ok":
            self._send(BODY)
        elif kind == "status":
            self.send_error(int(parts[1]))
        elif kind == "drop":
            self._send(BODY[: len(BODY) // 2], length=False)
            self.close_connection = True
        elif kind == "hang":
            self.hang.wait(10)
        elif kind == "redirect404":
            self.send_response(302)
            self.send_header("Location", "/status/404/" + parts[-1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "other":
            self._send(b"not the recorded file")
        else:
            self.send_error(404)


@pytest.fixture
def base():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    Handler.hang.clear()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        Handler.hang.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _files(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def _download(url, dest, **kw):
    return dl.download(url, dest, sha256=SHA, progress=False, **kw)


def test_good_control(base, tmp_path):
    """The server itself works: the faults below are the faults, not the fixture."""
    dest = tmp_path / NAME
    _download(base + "ok/" + NAME, dest)
    assert dest.read_bytes() == BODY and _files(tmp_path) == [NAME]


def test_connection_dropped_without_content_length(base, tmp_path):
    url = base + "drop/" + NAME
    with pytest.raises(dl.ChecksumError, match=rf"checksum mismatch for {NAME} downloaded from {url}: .*\({len(BODY) // 2} bytes\).*discarded"):
        _download(url, tmp_path / NAME)
    assert _files(tmp_path) == []


def test_server_that_never_answers_times_out(base, tmp_path):
    url = base + "hang/" + NAME
    t0 = time.monotonic()
    with pytest.raises(dl.DownloadError, match=rf"download of {url} failed: .*timed out"):
        _download(url, tmp_path / NAME, timeout=0.5)
    assert time.monotonic() - t0 < 8  # the timeout, not the server's 10 s hang
    assert _files(tmp_path) == []


def test_redirect_to_404(base, tmp_path):
    with pytest.raises(dl.DownloadError, match=r"HTTP 404"):
        _download(base + "redirect404/" + NAME, tmp_path / NAME)
    assert _files(tmp_path) == []


def test_disk_full_while_writing(base, tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(dl.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    url = base + "ok/" + NAME
    with pytest.raises(dl.DownloadError, match=rf"download of {url} failed: OSError: .*No space left on device"):
        _download(url, tmp_path / NAME)
    monkeypatch.undo()
    assert _files(tmp_path) == []


def test_ctrl_c_mid_download_leaves_no_part_file(base, tmp_path, monkeypatch):
    real_sha = hashlib.sha256

    class Interrupting:
        def __init__(self):
            self.h, self.n = real_sha(), 0

        def update(self, b):
            self.n += 1
            if self.n == 1:
                raise KeyboardInterrupt
            self.h.update(b)

        def hexdigest(self):
            return self.h.hexdigest()

    monkeypatch.setattr(dl.hashlib, "sha256", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        _download(base + "ok/" + NAME, tmp_path / NAME)
    monkeypatch.undo()
    assert _files(tmp_path) == []


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(dl.FILES, "fake", {NAME: SHA})
    monkeypatch.setitem(dl.MIRRORS, "fake", [])
    return "fake"


def test_fetch_every_mirror_failing_differently_leaves_nothing(base, tmp_path, fake):
    mirrors = [base + "status/503/", base + "drop/", base + "other/", base + "redirect404/"]
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch(fake, NAME, data_dir=tmp_path, mirrors=mirrors)
    msg = str(info.value)
    assert f"could not download {tmp_path / fake / NAME}; every mirror failed" in msg
    assert "HTTP 503" in msg and "HTTP 404" in msg and msg.count("checksum mismatch") == 2
    assert "GENJAX_DATA_DIR" in msg
    assert _files(tmp_path / fake) == []


def test_fetch_bad_mirrors_then_good_one(base, tmp_path, fake):
    path = dl.fetch(fake, NAME, data_dir=tmp_path, mirrors=[base + "status/500/", base + "drop/", base + "ok/"])
    assert path.read_bytes() == BODY
    assert _files(tmp_path / fake) == [NAME]


def test_cli_mnist_unreachable_is_one_line_and_leaves_nothing(base, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(dl.MIRRORS, "mnist", [base + "status/500/"])
    data_dir = tmp_path / "data"
    rc = cli.main(["train", "vae", "--data", "mnist", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs"),
                   "--steps", "2", "--no-progress"])
    assert rc == 1
    line = U.one_line_error(capsys.readouterr().err)
    assert "could not download" in line and "mnist" in line and "HTTP 500" in line
    assert [p for p in _files(data_dir) if p != "mnist"] == []
