"""Rig polling: pyasic identifies every rig; a fast path per firmware family reads its
telemetry in one or two exchanges; pyasic's `get_data` is the fallback.

Adding a firmware: one module here with `BACKEND` (the pyasic class it serves) and a path
class, one entry in `registry.REGISTRY`, one test-case folder in tests/cases/rigs/.
"""

from collector.rigs.source import FIELDS, PyasicSource

__all__ = ["FIELDS", "PyasicSource"]
