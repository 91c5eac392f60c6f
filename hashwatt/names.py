"""The names written to InfluxDB, once: measurements, tags and fields.

Writers (exporters/decode.py, the bridge's self-monitoring, the energy ledger, the customer
statements) build points with these constants; readers (the ledger and report queries,
status, the dashboards and alert rules) use them where they compose a query, and
tests/test_contract_names.py checks every quoted name in every InfluxQL query (generated
dashboards, alert rules, the code's queries) against this module, and every point decode
writes against SCHEMA. Plain `str` constants: an f-string or a dict key costs what a literal
costs on the bridge's hot path. Renaming or adding a tag or field starts here.
"""

from __future__ import annotations

from typing import Final


class Measurement:
    """The InfluxDB measurements."""

    RIG: Final = "rig"
    RIG_BOARD: Final = "rig_board"
    PDU: Final = "pdu"
    PDU_PHASE: Final = "pdu_phase"
    PDU_OUTLET: Final = "pdu_outlet"
    COLLECTOR: Final = "collector"
    EXPORTER: Final = "exporter"
    ENERGY_QUARTER: Final = "energy_quarter"
    STATEMENT: Final = "statement"


class Tag:
    """Tag keys (indexed; what dashboards, alert rules and finance group and filter by)."""

    SITE: Final = "site"
    RIG: Final = "rig"
    RACK: Final = "rack"
    SLOT: Final = "slot"
    CUSTOMER: Final = "customer"
    MAKE: Final = "make"
    MODEL: Final = "model"
    FIRMWARE: Final = "firmware"
    MAINTENANCE: Final = "maintenance"  # "yes" on a rig the inventory marks in maintenance
    BOARD: Final = "board"
    PDU: Final = "pdu"
    VENDOR: Final = "vendor"
    PHASE: Final = "phase"
    UNIT: Final = "unit"  # a daisy-chained PDU's link unit
    OUTLET: Final = "outlet"
    OUTLET_NAME: Final = "outlet_name"
    COLLECTOR: Final = "collector"
    EXPORTER: Final = "exporter"
    WINDOW: Final = "window"  # the tariff window of a ledger row
    MONTH: Final = "month"  # a statement's month


class Field:
    """Field keys, units in the name."""

    # rig
    ONLINE: Final = "online"
    UP: Final = "up"  # online as 0/1, so availability sums it
    ERROR: Final = "error"
    HASHRATE_THS: Final = "hashrate_ths"
    EXPECTED_HASHRATE_THS: Final = "expected_hashrate_ths"
    POWER_W: Final = "power_w"
    POWER_SOURCE: Final = "power_source"
    EFFICIENCY_J_TH: Final = "efficiency_j_th"
    TEMP_MAX_C: Final = "temp_max_c"
    TEMP_LIMIT_C: Final = "temp_limit_c"
    TEMP_MARGIN_C: Final = "temp_margin_c"
    NOMINAL_EFFICIENCY_J_TH: Final = "nominal_efficiency_j_th"
    ENV_TEMP_C: Final = "env_temp_c"
    FAN_MIN_RPM: Final = "fan_min_rpm"
    BOARDS_OK: Final = "boards_ok"
    BOARDS_TOTAL: Final = "boards_total"
    UPTIME_S: Final = "uptime_s"
    ERRORS: Final = "errors"
    INVALID: Final = "invalid"
    INVALID_FIELDS: Final = "invalid_fields"
    IDENTIFIED_MODEL: Final = "identified_model"
    MODEL_MISMATCH: Final = "model_mismatch"
    WIRING_SUSPECT: Final = "wiring_suspect"
    WIRING_REASON: Final = "wiring_reason"
    POOL_URL: Final = "pool_url"
    POOL_USER: Final = "pool_user"
    POOL_UNEXPECTED: Final = "pool_unexpected"
    POOL_REASON: Final = "pool_reason"
    RATE_PER_KWH: Final = "rate_per_kwh"
    COST_PER_H: Final = "cost_per_h"
    # rig_board
    CHIP_TEMP_C: Final = "chip_temp_c"
    BOARD_TEMP_C: Final = "board_temp_c"
    CHIPS: Final = "chips"
    # pdu, pdu_phase, pdu_outlet
    ENERGY_KWH: Final = "energy_kwh"
    VOLTAGE_V: Final = "voltage_v"
    CURRENT_A: Final = "current_a"
    ENERGY_RESET: Final = "energy_reset"
    RATING_A: Final = "rating_a"
    LOAD_PCT: Final = "load_pct"
    # collector: a poll cycle's statistics (hashwatt.contract.CycleStats)
    CYCLE_S: Final = "cycle_s"
    RIGS_TOTAL: Final = "rigs_total"
    RIGS_OK: Final = "rigs_ok"
    RIGS_FAILED: Final = "rigs_failed"
    RIGS_TIMEOUT: Final = "rigs_timeout"
    IDENTIFIED: Final = "identified"
    PUBLISHED: Final = "published"
    OVERRUNS: Final = "overruns"
    PDUS_TOTAL: Final = "pdus_total"
    PDUS_OK: Final = "pdus_ok"
    SPOOL_DEPTH: Final = "spool_depth"
    SPOOL_DROPPED: Final = "spool_dropped"
    SPOOL_REFUSED: Final = "spool_refused"
    SPOOL_MEMORY: Final = "spool_memory"
    SPOOL_DISK_ERRORS: Final = "spool_disk_errors"
    UNSTORED: Final = "unstored"
    RESENT: Final = "resent"
    FIELDS_DROPPED: Final = "fields_dropped"
    BROKER_CONNECTED: Final = "broker_connected"
    # exporter (the bridge's self-monitoring)
    MESSAGES: Final = "messages"
    POINTS: Final = "points"
    DEAD_LETTERS: Final = "dead_letters"
    DEAD_LETTER_ERRORS: Final = "dead_letter_errors"
    QOS0_DROPPED: Final = "qos0_dropped"
    RECEIPTS: Final = "receipts"
    WRITE_ERRORS: Final = "write_errors"
    BATCHES: Final = "batches"
    QUEUE_DEPTH: Final = "queue_depth"
    LAG_MS: Final = "lag_ms"
    BATCH_MS: Final = "batch_ms"
    LAG_P50_MS: Final = "lag_p50_ms"
    LAG_P99_MS: Final = "lag_p99_ms"
    LAG_SAMPLES: Final = "lag_samples"
    CUSTOMER_WRITE_ERRORS: Final = "customer_write_errors"
    # energy_quarter (the ledger)
    KWH: Final = "kwh"
    KWH_MEASURED: Final = "kwh_measured"
    KWH_ESTIMATED: Final = "kwh_estimated"
    COST: Final = "cost"
    COVERAGE: Final = "coverage"
    SECONDS: Final = "seconds"  # the part of the quarter the row's holder held the unit
    SOURCE: Final = "source"  # measured | estimated | ... | void (a superseded row)
    # statement (a customer's month; its totals, hashwatt/exporters/customers/statement.py)
    RIGS: Final = "rigs"
    ENERGY_COST: Final = "energy_cost"
    RIG_FEES: Final = "rig_fees"
    CAPACITY_FEE: Final = "capacity_fee"
    FEES: Final = "fees"
    TOTAL: Final = "total"
    TOTAL_TEXT: Final = "total_text"
    CURRENCY: Final = "currency"
    HOURS_HASHING: Final = "hours_hashing"
    HOURS_DRAWING: Final = "hours_drawing"
    HOURS_MAINTENANCE: Final = "hours_maintenance"
    HOURS_AVAILABLE: Final = "hours_available"
    AVAILABILITY_PCT: Final = "availability_pct"
    LEDGER_STATE: Final = "ledger_state"
    # roster marks on rig and collector (exporters/roster.py; Roster below)
    LAST_SEEN_S: Final = "last_seen_s"  # epoch seconds (to the ms) of the latest real reading
    FORGOTTEN: Final = "forgotten"  # 1 on the mark `hashwatt forget` writes, else 0
    SILENT_S: Final = "silent_s"  # seconds from the latest real reading to the mark


class Roster:
    """The bridge's roster marks (exporters/roster.py), read by the alert rules: a point in
    the subject's own measurement with the tags of its latest reading, written every
    INTERVAL_S for every rig and collector ever seen and not forgotten, so one silent for
    days is still known (Grafana forgets a series that stops arriving: it is resolved as
    missing)."""

    LAST_SEEN: Final = Field.LAST_SEEN_S
    FORGOTTEN: Final = Field.FORGOTTEN
    SILENT: Final = Field.SILENT_S
    INTERVAL_S: Final = 300
    # (measurement, the identity tag beside "site", a field every real reading carries)
    SUBJECTS: Final = ((Measurement.RIG, Tag.RIG, Field.UP),
                       (Measurement.COLLECTOR, Tag.COLLECTOR, Field.CYCLE_S))


def _values(namespace: type) -> frozenset[str]:
    return frozenset(v for k, v in vars(namespace).items() if k.isupper())


MEASUREMENTS = _values(Measurement)
TAGS = _values(Tag)
FIELDS = _values(Field)

M, T, F = Measurement, Tag, Field
_RIG_TAGS = frozenset({T.SITE, T.RIG, T.RACK, T.CUSTOMER, T.MAKE, T.MODEL, T.FIRMWARE, T.SLOT,
                       T.MAINTENANCE})
_RIG_FIELDS = frozenset({
    F.ONLINE, F.UP, F.ERROR, F.HASHRATE_THS, F.EXPECTED_HASHRATE_THS, F.POWER_W,
    F.POWER_SOURCE, F.EFFICIENCY_J_TH, F.TEMP_MAX_C, F.TEMP_LIMIT_C, F.TEMP_MARGIN_C,
    F.NOMINAL_EFFICIENCY_J_TH, F.ENV_TEMP_C, F.FAN_MIN_RPM, F.BOARDS_OK, F.BOARDS_TOTAL,
    F.UPTIME_S, F.ERRORS, F.INVALID, F.INVALID_FIELDS, F.IDENTIFIED_MODEL, F.MODEL_MISMATCH,
    F.WIRING_SUSPECT, F.WIRING_REASON, F.POOL_URL, F.POOL_USER, F.POOL_UNEXPECTED,
    F.POOL_REASON, F.RATE_PER_KWH, F.COST_PER_H})
_PDU_TAGS = frozenset({T.SITE, T.PDU, T.VENDOR, T.MODEL, T.RACK})
_CYCLE_FIELDS = frozenset({
    F.ONLINE, F.CYCLE_S, F.RIGS_TOTAL, F.RIGS_OK, F.RIGS_FAILED, F.RIGS_TIMEOUT, F.IDENTIFIED,
    F.PUBLISHED, F.OVERRUNS, F.PDUS_TOTAL, F.PDUS_OK, F.SPOOL_DEPTH, F.SPOOL_DROPPED,
    F.SPOOL_REFUSED, F.SPOOL_MEMORY, F.SPOOL_DISK_ERRORS, F.UNSTORED, F.RESENT,
    F.FIELDS_DROPPED, F.BROKER_CONNECTED})
_EXPORTER_FIELDS = frozenset({
    F.MESSAGES, F.POINTS, F.DEAD_LETTERS, F.DEAD_LETTER_ERRORS, F.QOS0_DROPPED,
    F.FIELDS_DROPPED, F.RECEIPTS, F.WRITE_ERRORS, F.BATCHES, F.QUEUE_DEPTH, F.LAG_MS,
    F.BATCH_MS, F.LAG_P50_MS, F.LAG_P99_MS, F.LAG_SAMPLES, F.CUSTOMER_WRITE_ERRORS})
_STATEMENT_FIELDS = frozenset({
    F.RIGS, F.KWH, F.KWH_MEASURED, F.KWH_ESTIMATED, F.ENERGY_COST, F.RIG_FEES, F.CAPACITY_FEE,
    F.FEES, F.TOTAL, F.TOTAL_TEXT, F.CURRENCY, F.HOURS_HASHING, F.HOURS_DRAWING,
    F.HOURS_MAINTENANCE, F.HOURS_AVAILABLE, F.AVAILABILITY_PCT, F.LEDGER_STATE})

# measurement -> (tag keys, field keys) its writers may use (checked in the tests); the
# roster's marks (Roster) add their two fields to rig and collector
SCHEMA: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    M.RIG: (_RIG_TAGS, _RIG_FIELDS),
    M.RIG_BOARD: (_RIG_TAGS | {T.BOARD},
                  frozenset({F.HASHRATE_THS, F.CHIP_TEMP_C, F.BOARD_TEMP_C, F.CHIPS})),
    M.PDU: (_PDU_TAGS, frozenset({F.ONLINE, F.ERROR, F.POWER_W, F.ENERGY_KWH, F.VOLTAGE_V,
                                  F.CURRENT_A, F.ENERGY_RESET, F.INVALID, F.INVALID_FIELDS})),
    M.PDU_PHASE: (_PDU_TAGS | {T.PHASE, T.UNIT},
                  frozenset({F.CURRENT_A, F.VOLTAGE_V, F.POWER_W, F.RATING_A, F.LOAD_PCT})),
    M.PDU_OUTLET: (_PDU_TAGS | {T.OUTLET, T.OUTLET_NAME, T.RIG, T.CUSTOMER, T.UNIT},
                   frozenset({F.POWER_W, F.CURRENT_A, F.VOLTAGE_V, F.ENERGY_KWH,
                              F.ENERGY_RESET, F.RATE_PER_KWH, F.COST_PER_H})),
    M.COLLECTOR: (frozenset({T.SITE, T.COLLECTOR}), _CYCLE_FIELDS),
    M.EXPORTER: (frozenset({T.SITE, T.EXPORTER}), _EXPORTER_FIELDS),
    M.ENERGY_QUARTER: (frozenset({T.SITE, T.RIG, T.PDU, T.UNIT, T.OUTLET, T.CUSTOMER, T.RACK,
                                  T.WINDOW}),
                       frozenset({F.KWH, F.KWH_MEASURED, F.KWH_ESTIMATED, F.COST,
                                  F.RATE_PER_KWH, F.COVERAGE, F.SOURCE, F.SECONDS})),
    M.STATEMENT: (frozenset({T.SITE, T.CUSTOMER, T.MONTH}), _STATEMENT_FIELDS),
}
del M, T, F


def quoted(*names: str) -> str:
    """Names as an InfluxQL list of quoted identifiers: `"site", "rig"` (a GROUP BY)."""
    return ", ".join(f'"{name}"' for name in names)
