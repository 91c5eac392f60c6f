"""The senders' TypedDicts (hashwatt.payloads) and the bridge's models (hashwatt.contract)
name exactly the same keys, nested ones too, so neither side can gain or lose a key alone;
and the keys PDU profiles and meter register maps name at run time are keys the TypedDicts
type."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from pydantic import BaseModel

from collector.meters.registers import PhaseValues as MeterPhase
from collector.meters.registers import Values as MeterValues
from collector.meters.registers import builtin_maps
from collector.pdu.profile import DeviceColumns, OutletColumns, PhaseColumns
from hashwatt import payloads
from hashwatt.contract import (
    BoardReading,
    CollectorStatus,
    CycleReport,
    CycleStats,
    OutletReading,
    PduReading,
    PhaseReading,
    RigReading,
)

PAIRS = [(payloads.RigDoc, RigReading), (payloads.BoardDoc, BoardReading),
         (payloads.PduDoc, PduReading), (payloads.PhaseDoc, PhaseReading),
         (payloads.OutletDoc, OutletReading), (payloads.CycleDoc, CycleReport),
         (payloads.CycleStatsDoc, CycleStats), (payloads.StatusDoc, CollectorStatus)]


def model_keys(model: type[BaseModel]) -> set[str]:
    """The keys a model reads from JSON (its aliases: `schema`, not `schema_`)."""
    return {field.alias or name for name, field in model.model_fields.items()}


def _inside(annotation: Any, wanted: Callable[[Any], bool]) -> Any:
    """The wanted type inside an annotation (`list[PhaseDoc]`, `CycleStatsDoc | None`)."""
    if wanted(annotation):
        return annotation
    return next((found for arg in get_args(annotation)
                 if (found := _inside(arg, wanted)) is not None), None)


def _typed_dict(annotation: Any) -> Any:
    return _inside(annotation, typing.is_typeddict)


def _model(annotation: Any) -> Any:
    return _inside(annotation, lambda a: isinstance(a, type) and issubclass(a, BaseModel))


@pytest.mark.parametrize(("doc", "model"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_each_typeddict_names_exactly_its_models_keys(doc: Any, model: type[BaseModel]) -> None:
    assert set(get_type_hints(doc)) == model_keys(model)
    # a key the model requires is one every sender must give (a PDU's `online` comes with
    # the body of its poll, PduBody, which cannot require it: pdu_doc, the header, does)
    required = {field.alias or name for name, field in model.model_fields.items()
                if field.is_required()}
    exempt = {"online"} if doc is payloads.PduDoc else set()
    assert required - exempt <= doc.__required_keys__


@pytest.mark.parametrize(("doc", "model"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_nested_messages_pair_up_too(doc: Any, model: type[BaseModel]) -> None:
    hints = get_type_hints(doc)
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    for key, field in fields.items():
        nested_model = _model(field.annotation)
        nested_doc = _typed_dict(hints[key])
        assert (nested_model is None) == (nested_doc is None), key
        if nested_model is not None:
            assert (nested_doc, nested_model) in PAIRS, key
            assert get_origin(hints[key]) is get_origin(field.annotation) or key == "stats", key


def test_a_key_missing_on_either_side_is_seen() -> None:
    class Short(typing.TypedDict):
        board: int

    assert set(get_type_hints(Short)) != model_keys(BoardReading)


@pytest.mark.parametrize(("columns", "values"), [
    (DeviceColumns, payloads.PduDoc), (PhaseColumns, payloads.PhaseValues),
    (OutletColumns, payloads.OutletValues), (MeterValues, payloads.DeviceValues)])
def test_the_names_profiles_and_register_maps_give_are_typed(columns: type[BaseModel],
                                                              values: Any) -> None:
    """The PDU source and the meter source put these names into readings as keys."""
    assert set(columns.model_fields) <= set(get_type_hints(values))


def test_every_register_maps_phases_give_only_typed_keys() -> None:
    """A meter map's phase may name any register of a device (MeterPhase is a MeterValues);
    the contract's phase has no energy, so no built-in map may give a phase one."""
    typed = set(get_type_hints(payloads.PhaseDoc))
    for name, rmap in builtin_maps().items():
        for phase in rmap.phases:
            given = {k for k, v in phase.__dict__.items() if v is not None}
            assert given <= typed, name
    assert set(MeterPhase.model_fields) - typed == {"energy_kwh"}
