"""Replies of each simulated firmware family, one module per family, shaped like the replies
real miners send (`../shared/reference/miner-api`, read, never copied).

Each vendor answers RPC commands and HTTP requests from the rig's current `Snapshot`.
"""

from __future__ import annotations

from sim.vendors.antminer import Antminer
from sim.vendors.auradine import Auradine
from sim.vendors.avalon import Avalon
from sim.vendors.base import Vendor
from sim.vendors.bitaxe import Bitaxe
from sim.vendors.braiins import Braiins
from sim.vendors.epic import Epic
from sim.vendors.luxos import LuxOS
from sim.vendors.vnish import VNish
from sim.vendors.whatsminer import Whatsminer
from sim.vendors.whatsminer_v3 import WhatsminerV3

VENDORS: dict[str, type[Vendor]] = {
    "antminer": Antminer, "whatsminer": Whatsminer, "avalon": Avalon, "bitaxe": Bitaxe,
    "whatsminer3": WhatsminerV3, "luxos": LuxOS, "vnish": VNish, "epic": Epic,
    "braiins": Braiins, "auradine": Auradine,
}

__all__ = ["VENDORS", "Vendor"]
