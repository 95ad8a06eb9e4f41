"""Tests of genjax.data.download against a local HTTP server (no internet)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pathlib
import socket
import threading

import pytest

from genjax.data import download as dl

PAYLOAD_NAME = "t10k-labels-idx1-ubyte.gz"
# A tiny but well-formed IDX label file (magic 2049, 5 labels), gzipped.
PAYLOAD = gzip.compress(
    (2049).to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes([3, 1, 4, 1, 5]), mtime=0
)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
WRONG_SHA = "0" * 64


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the fixture directory, plus /status/<code>/... and /truncated/... paths."""

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "status":
            self.send_error(int(parts[1]))
            return
        if parts[0] == "truncated":
            body = PAYLOAD[:10]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A ThreadingHTTPServer on 127.0.0.1 serving a fixture dir; yields (base_url, dir, hits)."""
    root = tmp_path / "served"
    root.mkdir()
    (root / PAYLOAD_NAME).write_bytes(PAYLOAD)
    hits: list[str] = []

    class Handler(_Handler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / "out" / PAYLOAD_NAME
    got = dl.download(base + PAYLOAD_NAME, dest, sha256=PAYLOAD_SHA, progress=False)
    assert got == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == [PAYLOAD_NAME]  # no .part files
    assert dl.sha256_file(dest) == PAYLOAD_SHA
    assert dl.md5_file(dest) == hashlib.md5(PAYLOAD).hexdigest()


def test_good_download_with_progress_bar(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / PAYLOAD_NAME
    dl.download(base + PAYLOAD_NAME, dest, sha256=PAYLOAD_SHA, progress=True)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    base, _, _ = server
    out = tmp_path / "out"
    dest = out / PAYLOAD_NAME
    with pytest.raises(dl.DownloadError) as info:
        dl.download(base + PAYLOAD_NAME, dest, sha256=WRONG_SHA, progress=False)
    msg = str(info.value)
    assert isinstance(info.value, dl.ChecksumError)
    assert WRONG_SHA in msg and PAYLOAD_SHA in msg and PAYLOAD_NAME in msg
    assert not dest.exists()
    assert _leftovers(out) == []


def test_wrong_checksum_keeps_previous_dest(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / "out" / PAYLOAD_NAME
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(dl.ChecksumError):
        dl.download(base + PAYLOAD_NAME, dest, sha256=WRONG_SHA, progress=False)
    assert dest.read_bytes() == b"old"
    assert _leftovers(dest.parent) == [PAYLOAD_NAME]


@pytest.mark.parametrize("code", [404, 500])
def test_http_error_leaves_nothing(server, tmp_path, code):
    base, _, _ = server
    url = f"{base}status/{code}/{PAYLOAD_NAME}"
    dest = tmp_path / "out" / PAYLOAD_NAME
    with pytest.raises(dl.DownloadError, match=str(code)) as info:
        dl.download(url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert url in str(info.value)
    assert _leftovers(dest.parent) == []


def test_missing_file_on_server_is_404(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / "out" / "nope.gz"
    with pytest.raises(dl.DownloadError, match="404"):
        dl.download(base + "nope.gz", dest, sha256=PAYLOAD_SHA, progress=False)
    assert _leftovers(dest.parent) == []


def test_truncated_body_leaves_nothing(server, tmp_path):
    base, _, _ = server
    url = base + "truncated/" + PAYLOAD_NAME
    dest = tmp_path / "out" / PAYLOAD_NAME
    with pytest.raises(dl.DownloadError, match="truncated") as info:
        # The right checksum: only the length check can catch this.
        dl.download(url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert url in str(info.value)
    assert _leftovers(dest.parent) == []


def test_connection_refused_leaves_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{PAYLOAD_NAME}"
    dest = tmp_path / PAYLOAD_NAME
    with pytest.raises(dl.DownloadError) as info:
        dl.download(url, dest, sha256=PAYLOAD_SHA, timeout=5, progress=False)
    assert url in str(info.value)
    assert _leftovers(tmp_path) == []


def test_download_error_is_oserror():
    assert issubclass(dl.DownloadError, OSError)
    assert issubclass(dl.ChecksumError, dl.DownloadError)


@pytest.fixture
def fake_dataset(monkeypatch):
    monkeypatch.setitem(dl.FILES, "fake", {PAYLOAD_NAME: PAYLOAD_SHA})
    monkeypatch.setitem(dl.MIRRORS, "fake", ["http://127.0.0.1:9/never-used/"])
    return "fake"


def test_fetch_downloads_then_uses_local_file(server, tmp_path, fake_dataset):
    base, _, hits = server
    root = tmp_path / "data"
    path = dl.fetch(fake_dataset, PAYLOAD_NAME, data_dir=root, mirrors=[base])
    assert path == root / fake_dataset / PAYLOAD_NAME
    assert path.read_bytes() == PAYLOAD
    assert len(hits) == 1
    # Second call: no network (a mirror list that cannot work proves it).
    again = dl.fetch(fake_dataset, PAYLOAD_NAME, data_dir=root, mirrors=["http://127.0.0.1:9/"])
    assert again == path
    assert len(hits) == 1
    assert _leftovers(path.parent) == [PAYLOAD_NAME]


def test_fetch_tries_next_mirror(server, tmp_path, fake_dataset):
    base, _, _ = server
    root = tmp_path / "data"
    path = dl.fetch(
        fake_dataset, PAYLOAD_NAME, data_dir=root, mirrors=[base + "status/500/", base]
    )
    assert path.read_bytes() == PAYLOAD


def test_fetch_all_mirrors_fail(server, tmp_path, fake_dataset):
    base, _, _ = server
    root = tmp_path / "data"
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch(
            fake_dataset,
            PAYLOAD_NAME,
            data_dir=root,
            mirrors=[base + "status/404/", base + "status/500/"],
        )
    msg = str(info.value)
    assert "404" in msg and "500" in msg and str(root / fake_dataset / PAYLOAD_NAME) in msg
    assert _leftovers(root / fake_dataset) == []


def test_fetch_no_download_missing(tmp_path, fake_dataset):
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError) as info:
        dl.fetch(fake_dataset, PAYLOAD_NAME, data_dir=root, download=False)
    msg = str(info.value)
    assert str(root / fake_dataset / PAYLOAD_NAME) in msg
    assert "GENJAX_DATA_DIR" in msg and "download=True" in msg


def test_fetch_present_file_with_wrong_content(tmp_path, fake_dataset):
    root = tmp_path / "data"
    path = root / fake_dataset / PAYLOAD_NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the right bytes")
    actual = hashlib.sha256(b"not the right bytes").hexdigest()
    with pytest.raises(dl.ChecksumError) as info:
        dl.fetch(fake_dataset, PAYLOAD_NAME, data_dir=root, mirrors=["http://127.0.0.1:9/"])
    msg = str(info.value)
    assert str(path) in msg and PAYLOAD_SHA in msg and actual in msg
    assert path.read_bytes() == b"not the right bytes"


def test_fetch_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        dl.fetch("nope", "x", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown file 'x'"):
        dl.fetch("mnist", "x", data_dir=tmp_path)


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("GENJAX_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert dl.data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert dl.data_dir() == tmp_path / "env"
    monkeypatch.delenv("GENJAX_DATA_DIR")
    assert dl.data_dir() == tmp_path / "xdg" / "genjax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dl.data_dir() == tmp_path / "home" / ".cache" / "genjax"


def test_recorded_table_is_complete():
    idx = {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert set(dl.FILES["mnist"]) == idx
    assert set(dl.FILES["fashion-mnist"]) == idx
    assert len(dl.FILES["binarized-mnist"]) == 6
    for files in dl.FILES.values():
        for sha in files.values():
            assert len(sha) == 64 and int(sha, 16) >= 0
    assert set(dl.MIRRORS) == set(dl.FILES)


def _refusing_base() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens: connection refused at once


def test_failed_download_removes_the_directories_it_created(tmp_path):
    dest = tmp_path / "a" / "b" / PAYLOAD_NAME
    with pytest.raises(dl.DownloadError):
        dl.download(_refusing_base() + PAYLOAD_NAME, dest, sha256=PAYLOAD_SHA, timeout=5, progress=False)
    assert _leftovers(tmp_path) == []  # not even an empty a/b/


def test_failed_download_keeps_directories_that_were_there(server, tmp_path):
    base, _, _ = server
    (tmp_path / "out" / "a").mkdir(parents=True)
    with pytest.raises(dl.DownloadError):
        dl.download(base + "status/404/x", tmp_path / "out" / "a" / "b" / PAYLOAD_NAME, sha256=PAYLOAD_SHA, progress=False)
    assert _leftovers(tmp_path / "out") == ["a"] and _leftovers(tmp_path / "out" / "a") == []


def test_fetch_not_found_says_where_it_looked_once_per_failure(tmp_path, fake_dataset, monkeypatch):
    monkeypatch.delenv("GENJAX_DATA_DIR", raising=False)
    root = tmp_path / "data" / "nested"
    mirrors = [_refusing_base(), _refusing_base(), _refusing_base()]
    with pytest.raises(dl.DataNotFoundError) as info:
        dl.fetch(fake_dataset, PAYLOAD_NAME, data_dir=root, mirrors=mirrors)
    e = info.value
    assert isinstance(e, dl.DownloadError)
    assert (e.dataset, e.file, e.path, e.root) == (fake_dataset, PAYLOAD_NAME, root / fake_dataset / PAYLOAD_NAME, root)
    assert len(e.reasons) == 1 and "refused" in e.reasons[0]  # three mirrors, one failure: said once
    msg = str(e)
    assert msg.count("refused") == 1 and "download of" not in msg
    assert f"Data directory: {root} (given as data_dir)" in msg and "GENJAX_DATA_DIR" in msg
    assert not (tmp_path / "data").exists()  # nothing created until a download succeeds


def test_fetch_not_found_names_the_data_dir_source(tmp_path, fake_dataset, monkeypatch):
    monkeypatch.setenv("GENJAX_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(dl.DataNotFoundError) as info:
        dl.fetch(fake_dataset, PAYLOAD_NAME, mirrors=[_refusing_base()])
    assert info.value.root == tmp_path / "env" and info.value.root_source == "from $GENJAX_DATA_DIR"
    assert not (tmp_path / "env").exists()
