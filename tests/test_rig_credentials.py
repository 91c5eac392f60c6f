"""Per-rig credentials: groups by name or model, a rig's own keys first, secrets from the
environment, files or CSV cells, never in a log line; the collector logs in with them."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from collector.mapping import Origin
from collector.rigs import PyasicSource
from collector.rigs.credentials import credentials_lookup
from hashwatt.config import load_config
from sim.replay import ReplayFarm
from tests.conftest import next_octet

CONFIG = """
[site]
name = "north"

[inventory]
csv = "inventory.csv"

[[credentials]]
name = "site-b"
web_user = "ops"
web_password = { env = "HW_TEST_SITE_B_WEB" }

[[credentials]]
name = "s19-fleet"
models = ["S19 Pro"]
web_password = { file = "s19.secret" }

[[credentials]]
name = "whatsminer-v3"
models = ["M60S VK40"]
rpc_user = "super"
rpc_password = { env = "HW_TEST_WM_V3" }

[[rigs]]
id = "own"
address = "10.0.0.1"
model = "S19 Pro"
credentials = "site-b"
web_password = { env = "HW_TEST_OWN_WEB" }

[[rigs]]
id = "named"
address = "10.0.0.2"
credentials = "site-b"
"""
CSV = "id,address,model,credentials,web_password\n" \
      "csv-model,10.0.0.3,S19 Pro,,\n" \
      "csv-cell,10.0.0.4,,,env:HW_TEST_CSV_WEB\n"


def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name, value in (("HW_TEST_SITE_B_WEB", "b-pass"), ("HW_TEST_WM_V3", "v3-pass"),
                        ("HW_TEST_OWN_WEB", "own-pass"), ("HW_TEST_CSV_WEB", "cell-pass")):
        monkeypatch.setenv(name, value)
    (tmp_path / "s19.secret").write_text("s19-pass\n")
    (tmp_path / "inventory.csv").write_text(CSV)
    path = tmp_path / "hashwatt.toml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    return load_config(path)


def test_a_rigs_own_keys_beat_its_named_group_which_beats_its_model_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, monkeypatch)
    lookup = credentials_lookup(cfg)
    rigs = {r.id: r for r in cfg.rigs}
    own = lookup(rigs["own"], "")
    assert (own.web_user, own.web_password) == ("ops", "own-pass")
    named = lookup(rigs["named"], "S19 Pro")  # the named group first, the model group after
    assert (named.web_user, named.web_password) == ("ops", "b-pass")
    assert lookup(rigs["csv-model"], "").web_password == "s19-pass"
    assert lookup(rigs["csv-cell"], "").web_password == "cell-pass"
    detected = lookup(rigs["csv-cell"].model_copy(update={"web_password": None}), "M60S VK40")
    assert (detected.rpc_user, detected.rpc_password) == ("super", "v3-pass")
    assert lookup(rigs["csv-cell"].model_copy(update={"web_password": None}), "S21").web_password \
        is None  # nothing configured: the firmware's default (pyasic's) stays


def test_no_password_shows_in_a_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, monkeypatch)
    lookup = credentials_lookup(cfg)
    text = repr(cfg) + "".join(repr(lookup(r, "M60S VK40")) for r in cfg.rigs)
    for secret in ("b-pass", "s19-pass", "v3-pass", "own-pass", "cell-pass"):
        assert secret not in text


def test_a_rig_naming_an_unknown_group_is_one_clear_problem(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from hashwatt.config import ConfigError
    monkeypatch.setenv("HW_TEST_SITE_B_WEB", "x")
    path = tmp_path / "hashwatt.toml"
    path.write_text('[site]\nname = "n"\n[[rigs]]\nid = "a"\naddress = "10.0.0.1"\n'
                    'credentials = "nope"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert len(err.value.problems) == 1
    assert "credentials: no [[credentials]] group named 'nope'" in err.value.problems[0]


@pytest.mark.e2e
def test_the_collector_logs_in_to_a_rig_with_its_groups_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A replayed stock Antminer whose web password is not the default: the fast path's
    digest login to summary.cgi succeeds with the model group's password."""
    caplog.set_level(logging.DEBUG)
    cfg = config(tmp_path, monkeypatch)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    farm = ReplayFarm(base=f"127.{next_octet()}.251", names=("antminer-v2020",),
                      web_password="s19-pass")
    asyncio.run_coroutine_threadsafe(farm.start(), loop).result(30)
    try:
        rig = farm.rigs[0]
        inventory = next(r for r in cfg.rigs if r.id == "csv-model")
        origin = Origin(site="north", collector="c1",
                        rig=inventory.model_copy(update={"address": rig.ip}), ts_ms=1)
        source = PyasicSource(credentials=credentials_lookup(cfg))
        reading = asyncio.run(source.poll(origin))
    finally:
        asyncio.run_coroutine_threadsafe(farm.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
    assert reading["online"] is True
    assert "http:80:/cgi-bin/summary.cgi authenticated" in rig.requests
    # (pyasic's own identification probes still try root/root: those are denied, harmlessly)
    assert "s19-pass" not in caplog.text
