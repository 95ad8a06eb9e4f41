"""The layout shows the design: imports follow the arrows of docs/architecture.md: never
sideways (one family importing another family) and never up. This test reads every ``import``
in ``genjax/`` (function-level ones included) and fails on an arrow the design does not allow, and on a
module that has no floor yet (a new package must be placed on purpose)."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "genjax"

BOTTOM = {"_checks", "_xla", "types", "_units", "results"}
FAMILIES = {"vae", "gan", "flows", "diffusion"}

#: what each top-level part of ``genjax`` may import besides itself (docs/architecture.md,
#: "Import arrows"). The families stand on one floor over ``nn``: no family imports another
#: family, ``data``, ``train`` or ``metrics``; ``train`` and ``metrics`` know only the model
#: API, never a family. A new part must be placed here on purpose.
ALLOWED = {
    **{b: BOTTOM for b in BOTTOM},
    "nn": BOTTOM, "data": BOTTOM, "viz": BOTTOM,
    **{f: BOTTOM | {"nn"} for f in FAMILIES},
    "clip": BOTTOM | {"nn"},  # stands on the families' floor (networks from nn, no data/train/metrics)
    "train": BOTTOM | {"data", "viz"},
    "metrics": BOTTOM | {"nn", "data", "train"},
    # a system composes the families' parts (latent diffusion: an autoencoder with the VAE's KL and
    # the GAN's objectives, the DDPM on its latents); it never builds data, trains or evaluates
    "ldm": BOTTOM | {"nn"} | FAMILIES,
    "unclip": BOTTOM | {"nn", "clip", "ldm"} | FAMILIES,  # DALL-E 2 in miniature: around CLIP, on ldm (its decoder is a LatentDiffusion)
    "registry": BOTTOM | {"nn", "data", "viz", "train", "metrics", "clip", "ldm", "unclip"} | FAMILIES,
    "compare": BOTTOM | {"nn", "data", "viz", "train", "metrics", "registry", "clip", "ldm", "unclip"} | FAMILIES,
    # the text-to-image table beside compare (it reuses compare's seed statistics)
    "compare_t2i": BOTTOM | {"nn", "data", "viz", "train", "metrics", "registry", "clip", "ldm", "unclip", "compare"} | FAMILIES,
    # genjax serve: a web page over the registry's text-to-image runs (restored by cli, handed in)
    "serve": BOTTOM | {"nn", "data", "viz", "train", "metrics", "registry", "clip", "ldm", "unclip"} | FAMILIES,
}
ALLOWED["cli"] = set(ALLOWED) | {"compare"}
ALLOWED["__init__"] = set(ALLOWED)


def part_of(module: str) -> str | None:
    bits = module.split(".")
    if bits[0] != "genjax":
        return None
    return bits[1] if len(bits) > 1 else "__init__"


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    return ".".join(rel.parts)


def imports_of(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "genjax":  # `from genjax import vae` names parts
                found += [(node.lineno, f"genjax.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, mod))
    return found


def arrows():
    for path in sorted(ROOT.rglob("*.py")):
        src = part_of(module_name(path)) if path != ROOT / "__init__.py" else "__init__"
        for line, target in imports_of(path):
            dst = part_of(target)
            if dst is not None:
                yield path.relative_to(ROOT.parent), line, src, dst


def test_every_part_has_a_floor():
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.is_file() and p.suffix == ".py")}
    assert sorted(parts - set(ALLOWED)) == [], "place each new part of genjax in ALLOWED (and docs/architecture.md)"


def test_imports_point_down_never_sideways():
    bad = []
    for where, line, src, dst in arrows():
        if src == dst:
            continue
        if dst not in ALLOWED[src]:
            bad.append(f"{where}:{line}: {src} -> {dst}")
    assert bad == [], "imports that break the floors:\n" + "\n".join(bad)


@pytest.mark.parametrize("src, dst", [("metrics", "gan"), ("flows", "metrics"), ("flows", "data"), ("gan", "train"),
                                      ("vae", "gan"), ("train", "vae"), ("nn", "data")])
def test_the_arrows_the_issue_names_are_forbidden(src, dst):
    assert dst not in ALLOWED[src]
