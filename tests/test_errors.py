"""The one exception tree (hashwatt/errors.py): every exception class hashwatt defines hangs
under HashwattError, and a poll deadline is a typed timeout."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

from hashwatt.errors import HashwattError, PollTimeout, SourceError

PACKAGES = ("hashwatt", "collector", "exporters", "dashboards", "sim", "bench")
SKIP = ("sim.snmpsim_variation",)  # loaded by snmpsim, not by us


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if not info.name.startswith(SKIP):
                names.append(info.name)
    return names


def _own_exceptions() -> list[type[BaseException]]:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found.append(obj)
    return found


def test_every_exception_hashwatt_defines_is_a_hashwatt_error() -> None:
    classes = _own_exceptions()
    assert len(classes) >= 20  # the tree as it stands: the branches and the module classes
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes
              if not issubclass(c, HashwattError)]
    assert strays == []


def test_poll_timeout_is_a_source_error_and_a_timeout_error() -> None:
    exc = PollTimeout(2.5)
    assert isinstance(exc, SourceError) and isinstance(exc, TimeoutError)
    assert str(exc) == "no reply within 2.5 s"  # the reading's published error text
    with pytest.raises(TimeoutError):  # old `except TimeoutError` code still catches it
        raise exc


def test_the_deadline_raises_poll_timeout() -> None:
    from collector.service import within

    async def hang() -> None:
        await asyncio.sleep(10)

    with pytest.raises(PollTimeout) as caught:
        asyncio.run(within(hang(), 0.01))
    assert caught.value.deadline_s == 0.01


def test_without_the_sim_extra_snmpsim_is_one_line_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.launch import ServiceError, SnmpSim

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))  # no snmpsim there
    with pytest.raises(ServiceError) as caught:
        SnmpSim(tmp_path).command()
    assert str(caught.value) == "snmpsim is not installed: pip install 'hashwatt[sim]'"
