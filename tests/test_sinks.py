"""Sinks as plugins: every `[influxdb] api` value has one, each builds the site's, the ledger's
and a customer's writer from the config, and the ledger's read-back list is stated. (Real
writes: tests/test_lineproto.py, test_init.py, test_customer_access.py, test_statements.py.)"""

from __future__ import annotations

from typing import get_args

from pydantic import SecretStr

from exporters.sinks import (
    LEDGER_READABLE,
    SINKS,
    InfluxV1Sink,
    InfluxV2Sink,
    customer_sink,
    make_sink,
    query_client,
)
from hashwatt.config import Config, CustomerConfig, InfluxConfig, SiteConfig

ACME = CustomerConfig.model_validate({
    "id": "acme", "name": "Acme", "currency": "EUR", "price": {"kind": "tariff"},
    "access": {"database": "cust_acme"}})


def _config(**influx: object) -> Config:
    return Config(site=SiteConfig(name="north"), influxdb=InfluxConfig.model_validate(influx))


def test_every_api_the_config_accepts_has_a_plugin_and_the_ledger_reads_back_from_both() -> None:
    assert sorted(SINKS) == sorted(get_args(InfluxConfig.model_fields["api"].annotation))
    assert {"v1", "v2"} == LEDGER_READABLE


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
