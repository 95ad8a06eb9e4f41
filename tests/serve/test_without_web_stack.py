"""``genjax serve`` where the web stack is missing or the runs are wrong: clear errors before any
work (no model is trained or loaded here)."""

from __future__ import annotations

import sys
import types

import pytest

from genjax import cli, serve
from genjax.types import NO_CONDITION


def test_a_missing_web_stack_says_how_to_install_it(monkeypatch):
    for name in ["starlette"] + [m for m in list(sys.modules) if m.startswith("starlette.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import starlette...` raises ImportError
    monkeypatch.delitem(sys.modules, "genjax.serve.app", raising=False)
    monkeypatch.delattr(serve, "app", raising=False)  # imported before: the package holds it
    with pytest.raises(ImportError, match=r'pip install -e "\.\[serve\]"'):
        serve.create_app(object())


def test_only_text_to_image_runs_are_served(tmp_path):
    vae = types.SimpleNamespace(condition=NO_CONDITION)
    data = types.SimpleNamespace(kind="image", shape=(8, 8, 1))
    with pytest.raises(ValueError, match="model 'vae'.* is not a text-to-image model: genjax serve takes ldm"):
        serve.ServedRun.from_loaded("x", (tmp_path, {"model": "vae"}, None, data, vae, {}, 1))
    with pytest.raises(ValueError, match="runs: give at least one run"):
        serve.Engine([], start=False)


def test_the_command_line_checks_its_arguments(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["serve", str(tmp_path), "--port", "0"]) == 1
    assert "--port must be in [1, 65535]" in capsys.readouterr().err
