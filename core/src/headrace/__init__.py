"""headrace: plugin-based workflow orchestration for Python.

Importing this package is kept cheap (see ``benchmarks/bench_startup.py``): submodules are imported
when first used, never here.
"""

from __future__ import annotations

from headrace.__about__ import __version__

__all__ = ["__version__"]
