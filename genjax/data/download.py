"""Locating, downloading and verifying the raw data files of the image data sets.

Every file genjax reads is recorded in :data:`FILES` with its sha256. A file is
looked up as ``<data_dir>/<dataset>/<filename>`` where ``data_dir`` is resolved by
:func:`data_dir` (argument, then the ``GENJAX_DATA_DIR`` environment variable,
then ``$XDG_CACHE_HOME/genjax`` or ``~/.cache/genjax``).

:func:`fetch` returns the path of a verified file, downloading it from the
mirrors recorded in :data:`MIRRORS` when it is missing (and ``download=True``).
A download goes to a temporary file next to the destination
(``<name>.part-<random>``), is checked against the recorded sha256 and only then
renamed onto the destination, so an interrupted or corrupt download never leaves
a file that looks complete.

Offline use: copy the files (e.g. the canonical MNIST ``*.gz`` files) into
``<data_dir>/<dataset>/`` and set ``GENJAX_DATA_DIR`` (or pass ``data_dir=``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

__all__ = [
    "ChecksumError",
    "DataNotFoundError",
    "DownloadError",
    "FILES",
    "MIRRORS",
    "data_dir",
    "download",
    "fetch",
    "md5_file",
    "sha256_file",
]

ENV_VAR = "GENJAX_DATA_DIR"
_CHUNK = 1 << 20  # 1 MiB


class DownloadError(OSError):
    """A data file could not be downloaded (HTTP/connection error, truncation, bad checksum)."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the recorded one (a download, or a file already on disk)."""


class DataNotFoundError(DownloadError):
    """A recorded data file is not on disk and no mirror could supply it.

    Attributes (for callers that phrase their own advice, e.g. the CLI's ``--data-dir``):
    ``dataset``, ``file`` (its name), ``path`` (where it was looked for), ``root`` (the data
    directory), ``root_source`` (how ``root`` was chosen, in words) and ``reasons``
    (one line per distinct failure, each naming the mirrors it happened on).
    """

    def __init__(self, message: str, *, dataset: str, filename: str, path: pathlib.Path, root: pathlib.Path,
                 root_source: str, reasons: list[str]):
        super().__init__(message)
        # (not ``filename``: OSError's own attribute, which would change the message)
        self.dataset, self.file, self.path, self.root = dataset, filename, path, root
        self.root_source, self.reasons = root_source, reasons


# dataset -> filename -> sha256 of the file as stored/served.
# Source: the PROVENANCE.md files of the project's shared data (canonical distribution files).
FILES: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    # Larochelle & Murray's fixed binarization. The public mirror serves the
    # uncompressed .amat files (sha256 = TFDS checksums); a local copy may also be
    # kept gzip-compressed (`gzip -9 -n`), checked against the .gz sha256.
    "binarized-mnist": {
        "binarized_mnist_train.amat": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
        "binarized_mnist_valid.amat": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
        "binarized_mnist_test.amat": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
        "binarized_mnist_train.amat.gz": "af247bd6075cf9adc4715459dcd5f13eaa99a2c92d8d81379a05da94770b6c0e",
        "binarized_mnist_valid.amat.gz": "533b71bc0198f4d73c54ae5fe6c96fc08dc3cf1b3fae24c5521dbc0452507e38",
        "binarized_mnist_test.amat.gz": "32a3c54d03504632bf9f131b4a148c7567aa6fc87da017049b044bdc14c2a0f2",
    },
}

# dataset -> base URLs, tried in order. ``<base><filename>`` is the file's URL.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
    "binarized-mnist": [
        "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",
    ],
}


def data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Resolve the root directory of the data files.

    Args:
        data_dir: Explicit directory. Takes precedence when given.

    Returns:
        ``data_dir`` if given; else ``$GENJAX_DATA_DIR`` if set and non-empty; else
        ``$XDG_CACHE_HOME/genjax`` (when ``XDG_CACHE_HOME`` is an absolute path) or
        ``~/.cache/genjax``. ``~`` is expanded; the directory is not created.
    """
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return pathlib.Path(xdg) / "genjax"
    return pathlib.Path.home() / ".cache" / "genjax"


def data_dir_source(data_dir: str | os.PathLike | None = None) -> str:
    """How :func:`data_dir` chooses its answer for these arguments, in words (for error messages)."""
    if data_dir is not None:
        return "given as data_dir"
    if os.environ.get(ENV_VAR):
        return f"from ${ENV_VAR}"
    return f"the default cache; ${ENV_VAR} is not set"


def _hash_file(path: str | os.PathLike, h) -> str:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    return _hash_file(path, hashlib.sha256())


def md5_file(path: str | os.PathLike) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    return _hash_file(path, hashlib.md5())


def _remove_quietly(path: str | os.PathLike) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _remove_empty_dirs(dirs: list[pathlib.Path]) -> None:
    for d in dirs:  # deepest first; a directory something else wrote into meanwhile stays
        try:
            d.rmdir()
        except OSError:
            return


def download(
    url: str,
    dest: pathlib.Path,
    *,
    sha256: str,
    timeout: float = 60.0,
    progress: bool = True,
) -> pathlib.Path:
    """Download ``url`` to ``dest``, verifying its sha256.

    The body is streamed to ``<dest.name>.part-<random>`` in ``dest``'s directory
    (created if needed, and removed again when the download fails), its length is checked against Content-Length (when the
    server sends one) and its sha256 against ``sha256``; only then is it renamed
    onto ``dest`` with :func:`os.replace`.

    Args:
        url: The URL to fetch (anything ``urllib`` opens).
        dest: Destination path. An existing file there is replaced only on success.
        sha256: Expected hex sha256 of the body.
        timeout: Socket timeout in seconds.
        progress: Show a tqdm progress bar (on stderr).

    Returns:
        ``dest``.

    Raises:
        ChecksumError: The body's sha256 differs; the message names the URL, the
            file, and the expected and actual checksums.
        DownloadError: HTTP error status, connection/timeout error or truncated
            body; the message names the URL and the cause.
        On any failure the temporary file and the directories this call created are
        removed, and ``dest`` is untouched.
    """
    dest = pathlib.Path(dest)
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]  # deepest first
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=dest.name + ".part-", dir=dest.parent)
    except BaseException:
        _remove_empty_dirs(created)
        raise
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    status = getattr(resp, "status", None)
                    if status is not None and not 200 <= status < 300:
                        raise DownloadError(f"download of {url} failed: HTTP status {status}")
                    length = resp.headers.get("Content-Length")
                    try:
                        expected_len = int(length) if length is not None else None
                    except ValueError:
                        expected_len = None
                    bar = None
                    if progress:
                        from tqdm.auto import tqdm

                        bar = tqdm(
                            total=expected_len,
                            unit="B",
                            unit_scale=True,
                            unit_divisor=1024,
                            desc=dest.name,
                            leave=False,
                        )
                    got = 0
                    try:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            got += len(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    finally:
                        if bar is not None:
                            bar.close()
            except DownloadError:
                raise
            except urllib.error.HTTPError as e:
                raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
            except urllib.error.URLError as e:
                raise DownloadError(f"download of {url} failed: {e.reason}") from e
            except http.client.IncompleteRead as e:
                raise DownloadError(
                    f"download of {url} failed: truncated body ({len(e.partial)} bytes read, "
                    f"{e.expected} more expected)"
                ) from e
            except (http.client.HTTPException, socket.timeout, OSError) as e:
                raise DownloadError(f"download of {url} failed: {type(e).__name__}: {e}") from e
        if expected_len is not None and got != expected_len:
            raise DownloadError(
                f"download of {url} failed: truncated body (got {got} bytes, "
                f"Content-Length says {expected_len})"
            )
        actual = h.hexdigest()
        if actual != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {dest.name} downloaded from {url}: "
                f"expected sha256 {sha256.lower()}, got sha256 {actual} ({got} bytes); "
                "the download was discarded"
            )
        os.replace(tmp, dest)
    except BaseException:
        _remove_quietly(tmp)
        _remove_empty_dirs(created)  # a failed download leaves the file system as it found it
        raise
    return dest


# Aliases: fetch's keyword arguments shadow these names.
_resolve_data_dir = data_dir
_download = download

# (path, size, mtime_ns) -> sha256 of files already verified in this process.
_VERIFIED: dict[tuple[str, int, int], str] = {}
_VERIFIED_LOCK = threading.Lock()


def _verify_present(path: pathlib.Path, expected: str) -> None:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _VERIFIED_LOCK:
        if _VERIFIED.get(key) == expected:
            return
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"checksum mismatch for existing file {path}: expected sha256 {expected}, "
            f"got sha256 {actual}. The file is corrupt or a different version; "
            "delete or replace it (it was left in place)."
        )
    with _VERIFIED_LOCK:
        _VERIFIED[key] = expected


def fetch(
    dataset: str,
    filename: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
) -> pathlib.Path:
    """Return the verified local path of a recorded data file, downloading it if missing.

    Args:
        dataset: A key of :data:`FILES` (e.g. ``"mnist"``).
        filename: A file recorded for that dataset (e.g. ``"t10k-images-idx3-ubyte.gz"``).
        data_dir: Root directory; see :func:`data_dir` for the default.
        download: When the file is missing, download it (True) or raise (False).
        mirrors: Base URLs to try in order instead of ``MIRRORS[dataset]``.

    Returns:
        ``<data_dir>/<dataset>/<filename>``, whose sha256 equals the recorded one.

    Raises:
        ValueError: Unknown dataset or filename.
        ChecksumError: The file exists but its sha256 differs (it is not deleted).
        FileNotFoundError: The file is missing and ``download=False``.
        DataNotFoundError: The file is missing and every mirror failed (a
            ``DownloadError``; nothing is left on disk). The message says where the
            file was looked for, why each mirror failed, and how to point at a copy.
    """
    if dataset not in FILES:
        raise ValueError(f"unknown dataset {dataset!r}; valid choices: {sorted(FILES)}")
    files = FILES[dataset]
    if filename not in files:
        raise ValueError(
            f"unknown file {filename!r} for dataset {dataset!r}; valid choices: {sorted(files)}"
        )
    expected = files[filename]
    root = _resolve_data_dir(data_dir)
    path = root / dataset / filename
    if path.is_file():
        _verify_present(path, expected)
        return path
    if not download:
        raise FileNotFoundError(
            f"data file {path} not found. Place the file there, point {ENV_VAR} (or the "
            "data_dir argument) at a directory holding "
            f"'{dataset}/{filename}', or pass download=True to download it."
        )
    bases = list(MIRRORS.get(dataset, []) if mirrors is None else mirrors)
    if not bases:
        raise DownloadError(f"no mirrors to download {path} from (dataset {dataset!r})")
    failures: dict[str, list[str]] = {}  # reason -> hosts it happened on (in order)
    for base in bases:
        url = base if base.endswith("/") else base + "/"
        url += filename
        try:
            return _download(url, path, sha256=expected)
        except DownloadError as e:
            reason = str(e).removeprefix(f"download of {url} failed: ")
            failures.setdefault(reason, []).append(urllib.parse.urlsplit(url).netloc or url)
    reasons = [f"{r} ({', '.join(hosts)})" for r, hosts in failures.items()]
    source = data_dir_source(data_dir)
    hint = ""
    if (root / filename).is_file():  # pointed at the data set's own folder
        hint = f" {root} itself holds {filename}: the data directory is its parent, {root.parent}."
    raise DataNotFoundError(
        f"could not download {path}; every mirror failed: " + "; ".join(reasons) + "."
        + hint
        + f" Data directory: {root} ({source}). Put '{dataset}/{filename}' there, or set {ENV_VAR}"
        " (or pass data_dir) to a directory that holds it.",
        dataset=dataset, filename=filename, path=path, root=root, root_source=source, reasons=reasons,
    )
