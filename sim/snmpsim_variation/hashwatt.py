"""snmpsim variation module "hashwatt": PDU readings computed from the simulated rigs.

snmpsim executes this file and puts `recordContext` into its globals. A record reads:
OID|2:hashwatt|spec=<farm-spec.json>,pdu=<id>,field=<name>,rig=<id>
"""

from typing import Any

from sim import pdus


def init(**context: Any) -> None:
    """Nothing to prepare: the spec is read (and re-read when it changes) per request."""


def variate(oid: Any, tag: Any, value: str, **context: Any) -> tuple[Any, Any, Any]:
    """Answer GET and GETNEXT/GETBULK with the live value; refuse SET."""
    if (not context["nextFlag"] and not context["exactMatch"]) or context["setFlag"]:
        return context["origOid"], tag, context["errorStatus"]
    record = globals()["recordContext"]
    if "settings" not in record:
        record["settings"] = dict(item.split("=", 1) for item in value.split(","))
    return oid, tag, pdus.value(record["settings"], pdus.now())


def shutdown(**context: Any) -> None:
    """Nothing to release."""
