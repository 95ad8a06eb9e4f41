"""Loads the shared helpers of the reliability tests (``_util.py``) once, as the module
``genjax_tests_reliability_util`` (pytest runs with ``--import-mode=importlib``, so the
test files cannot import a sibling module by name)."""

import importlib.util
import pathlib
import sys

_NAME = "genjax_tests_reliability_util"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, pathlib.Path(__file__).with_name("_util.py"))
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)
