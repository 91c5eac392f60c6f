"""Sinks as plugins: every `[influxdb] api` value has one, with its config model beside its
code; each builds the site's, the ledger's and a customer's writer from the config; the
table is checked at start-up by the sink's own model (one line: file:line, key, what is
wrong), its secrets come from env/files and never show; the ledger's read-back list is
stated. (Real writes: tests/test_lineproto.py, test_bridge.py, test_init.py,
test_customer_access.py, test_statements.py.)"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import SecretStr

from exporters.sinks import (
    CONFIGS,
    LEDGER_READABLE,
    SINKS,
    InfluxV1Config,
    InfluxV1Sink,
    InfluxV2Config,
    InfluxV2Sink,
    customer_sink,
    make_sink,
    query_client,
    settings,
)
from hashwatt.config import (
    Config,
    ConfigError,
    CustomerConfig,
    SecretRef,
    SinkConfig,
    SiteConfig,
    load_config,
    secret_keys,
)

ACME = CustomerConfig.model_validate({
    "id": "acme", "name": "Acme", "currency": "EUR", "price": {"kind": "tariff"},
    "access": {"database": "cust_acme"}})


def _config(**influx: object) -> Config:
    model = CONFIGS[str(influx.get("api", "v1"))]
    return Config(site=SiteConfig(name="north"), influxdb=model.model_validate(influx))


def test_every_sink_type_has_its_config_model_beside_it_and_the_ledger_reads_back_from_both(
        ) -> None:
    for name, plugin in SINKS.items():
        assert issubclass(plugin.config, SinkConfig)
        assert get_args(plugin.config.model_fields["api"].annotation) == (name,)
        # the model lives in the sink's own module, not in the shared vocabulary
        assert plugin.config.__module__ == plugin.site.__module__
    assert {"v1", "v2"} == LEDGER_READABLE
    assert secret_keys(InfluxV1Config) == ["password", "token"]


def test_v1_writes_raw_ledger_and_customer_where_the_config_says() -> None:
    cfg = _config(api="v1", database="hw", username="writer", password=SecretStr("pw"))
    raw, ledger = make_sink(cfg), make_sink(cfg, ledger=True)
    assert isinstance(raw, InfluxV1Sink) and raw.params == {"db": "hw", "precision": "ms"}
    assert isinstance(ledger, InfluxV1Sink)
    assert ledger.params == {"db": "hw", "precision": "ms", "rp": "ledger"}
    own = make_sink(_config(api="v1", database="hw", ledger_database="hw_ledger"), ledger=True)
    assert isinstance(own, InfluxV1Sink) and own.params == {"db": "hw_ledger", "precision": "ms"}
    sink = customer_sink(cfg, ACME, ledger=True)
    assert isinstance(sink, InfluxV1Sink)
    assert sink.params == {"db": "cust_acme", "precision": "ms", "rp": "ledger"}
    assert query_client(cfg).database == "hw"
    for s in (raw, ledger, own, sink):
        s.close()


def test_v2_writes_to_the_bucket_and_the_ledger_bucket() -> None:
    cfg = _config(api="v2", org="o", bucket="b", token="t")
    raw, ledger = make_sink(cfg), make_sink(cfg, ledger=True)
    assert isinstance(raw, InfluxV2Sink) and (raw.org, raw.bucket) == ("o", "b")
    assert isinstance(ledger, InfluxV2Sink) and ledger.bucket == "hashwatt-ledger"
    sink = customer_sink(cfg, ACME, ledger=True)
    assert isinstance(sink, InfluxV2Sink) and sink.bucket == "cust_acme-ledger"
    assert query_client(cfg).database == "b"
    for s in (raw, ledger, sink):
        s.close()


HEAD = '[site]\nname = "north"\n\n[influxdb]\n'  # [influxdb] is line 4, its keys 5, 6, ...


def _file(tmp_path: Path, influx: str) -> Path:
    path = tmp_path / "hashwatt.toml"
    path.write_text(HEAD + influx)
    os.chmod(path, 0o600)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, sinks=CONFIGS)
    return caught.value.problems


@pytest.mark.parametrize(("influx", "problem"), [
    ('api = "v1"\n', '4: influxdb: api = "v1" needs database'),
    ('api = "v2"\norg = "o"\n', '4: influxdb: api = "v2" needs bucket, token'),
    ('api = "v3"\ndatabase = "x"\n', "5: influxdb.api: unknown sink type 'v3' (known: v1, v2)"),
    ('database = "x"\ndatabse = "y"\n',
     "6: influxdb.databse: unknown key; did you mean 'database'?"),
    ('database = "x"\ntimeout_s = 0\n', "6: influxdb.timeout_s: Input should be greater than 0"),
])
def test_a_wrong_sink_table_is_one_line_at_start_up(tmp_path: Path, influx: str,
                                                    problem: str) -> None:
    path = _file(tmp_path, influx)
    assert _problems(path) == [f"{path}:{problem}"]


def test_loaded_without_the_sinks_models_the_sink_checks_its_table_when_built(
        tmp_path: Path) -> None:
    cfg = load_config(_file(tmp_path, 'api = "v2"\norg = "o"\n'))  # not checked here
    with pytest.raises(ConfigError) as caught:
        make_sink(cfg)
    assert caught.value.problems == [f'{cfg.source}: influxdb: api = "v2" needs bucket, token']


def test_the_sinks_secrets_come_from_env_or_files_only_for_the_roles_that_need_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    monkeypatch.setenv("HW_TEST_INFLUX_TOKEN", "tok-from-env")
    (tmp_path / "pw").write_text("pw-from-file\n")
    path = _file(tmp_path, 'api = "v2"\norg = "o"\nbucket = "b"\n'
                 'token = { env = "HW_TEST_INFLUX_TOKEN" }\npassword = { file = "pw" }\n')
    for sinks in (CONFIGS, None):  # checked at load, or later by the sink
        cfg = load_config(path, "bridge", sinks=sinks)
        influx = settings(cfg)
        assert isinstance(influx, InfluxV2Config)
        assert cfg.secret(influx.token) == "tok-from-env"
        assert cfg.secret(influx.password) == "pw-from-file"
        assert "tok-from-env" not in repr(cfg) and "pw-from-file" not in repr(cfg)
        collector = settings(load_config(path, "collector", sinks=sinks))
        assert isinstance(collector, InfluxV2Config)  # a reference, not the value
        assert collector.token == SecretRef(env="HW_TEST_INFLUX_TOKEN")
        assert collector.password == SecretRef(file=Path("pw"))
    # a role that does not write needs no token in its environment
    monkeypatch.delenv("HW_TEST_INFLUX_TOKEN")
    assert load_config(path, "collector", sinks=CONFIGS).influxdb is not None
    assert _problems(path) == [
        f"{path}:8: influxdb.token.env: environment variable HW_TEST_INFLUX_TOKEN is not set"]
    # a literal token in a file others can read: warned, by the key the sink's model names
    loose = _file(tmp_path, 'api = "v2"\norg = "o"\nbucket = "b"\ntoken = "literal-tok"\n')
    os.chmod(loose, 0o644)
    with caplog.at_level(logging.WARNING):
        load_config(loose, sinks=CONFIGS)
    assert "readable by other users: chmod 600 it" in caplog.text
    assert "(influxdb.token)" in caplog.text and "literal-tok" not in caplog.text


def test_check_config_prints_the_sinks_problem_as_one_line(tmp_path: Path) -> None:
    path = _file(tmp_path, 'api = "v1"\nurl = "http://127.0.0.1:8086"\ndatabse = "x"\n')
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "check-config", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"error: {path}:7: influxdb.databse: unknown key; did you mean 'database'?"]
    assert "Traceback" not in run.stderr
