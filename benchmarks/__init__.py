"""genjax benchmarks: ``python -m benchmarks.run [--only NAME] [--quick] [--out results.json]``.

Never collected by pytest (``testpaths = ["tests"]``); ``tests/test_benchmarks.py``
only checks that each entry's ``--quick`` mode runs and writes the expected JSON.
See ``benchmarks/README.md`` for how to read the table.
"""
