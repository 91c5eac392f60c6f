"""Braiins OS+ (BOSer): a cgminer-compatible RPC on 4028 and the gRPC API on 50051
(`braiins.bos.v1`, HTTP/2; pyasic's BOSer reads board, power and fan data only there).

Shapes follow Braiins OS 25.07 replies (`reference/miner-api/braiins/v25_07`, gRPC rendered
as JSON): `get_miner_details` (MAC, `bos_version.current`, `sticker_hashrate`),
`get_miner_stats` (`power_stats.approximated_consumption.watt`), `get_hashboards`
(`board_temp`, `highest_chip_temp`, `stats.real_hashrate.last_5s`, `chips_count`),
`get_cooling_state` (fans by position). Every call except `Login` needs the token that
`Login` returns in its initial metadata, as on the real firmware (pyasic
`BOSerWebAPI._get_auth`); the messages are pyasic's own generated protobuf classes.
Replies over gRPC leave as grpclib frames them (no LAN segmentation there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpclib.const
import grpclib.server
from pyasic.web.braiins_os.proto.braiins.bos import v1

from sim.model import Scenario, Snapshot
from sim.vendors.antminer import pools
from sim.vendors.base import Vendor, mac_of, session_token, status

GRPC_PORT = 50051
USER, PASSWORD = "root", "root"  # the firmware's default (pyasic `default_bosminer_password`)
BOS_VERSION = "2025-08-06-0-3881c51d-25.07-plus"


class Braiins(Vendor):
    """Braiins OS+ (BOSer)."""

    has_grpc = True
    DESCRIPTION = "BOSer boser-buildroot 0.1.0-3881c51d"

    def rpc(self, command: str) -> dict | None:
        """BOSer's cgminer-compatible read commands."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "devdetails": self._devdetails,
            "summary": self._summary, "devs": self._devs, "tunerstatus": self._tunerstatus,
            "pools": lambda s: pools(s, self.DESCRIPTION),
        }
        build = builders.get(command)
        return build(s) if build else None

    def unjoinable(self, command: str) -> dict:
        """BOSer joins its own read commands (tunerstatus) too."""
        return self.rpc(command) or self.invalid()

    def _model(self, s: Snapshot) -> str:
        return f"Antminer {s.rig.hardware.model}"

    def _version(self, s: Snapshot) -> dict:
        return {"STATUS": status(22, "BOSer versions", self.DESCRIPTION),
                "VERSION": [{"API": "3.7", "BOSer": "boser-buildroot 0.1.0-3881c51d"}],
                "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        return {"STATUS": status(69, "Device Details", self.DESCRIPTION), "DEVDETAILS": [
            {"DEVDETAILS": b.index, "ID": b.index + 1, "Name": f"Hashboard {b.index + 1}",
             "Model": self._model(s), "Chips": b.chips, "Driver": "", "Kernel": ""}
            for b in s.boards], "id": 1}

    def _summary(self, s: Snapshot) -> dict:
        mhs = s.hashrate_gh * 1000
        return {"STATUS": status(11, "Summary", self.DESCRIPTION), "SUMMARY": [{
            "Elapsed": s.uptime_s, "MHS 1m": mhs, "MHS 5s": mhs, "MHS 15m": mhs,
            "MHS av": s.average_gh * 1000, "Accepted": 10464, "Rejected": 18}], "id": 1}

    def _devs(self, s: Snapshot) -> dict:
        return {"STATUS": status(9, f"{len(s.boards)} ASC(s)", self.DESCRIPTION), "DEVS": [
            {"ASC": b.index, "ID": b.index + 1, "Enabled": "Y",
             "Status": "Alive" if b.chips else "Dead", "MHS 5s": b.hashrate_gh * 1000,
             "MHS 1m": b.hashrate_gh * 1000, "Nominal MHS": s.expected_gh * 1000 / 3}
            for b in s.boards], "id": 1}

    def _tunerstatus(self, s: Snapshot) -> dict:
        chains = [{"HashchainIndex": b.index, "Status": "Stable" if b.chips else
                   "Hashchain failure {not detected}"} for b in s.boards]
        return {"STATUS": status(11, "Tuner Status", self.DESCRIPTION), "TUNERSTATUS": [{
            "TunerChainStatus": chains, "ApproximateMinerPowerConsumption": s.power_w}],
            "id": 1}

    # --- gRPC ---------------------------------------------------------------------------

    def hung(self) -> bool:
        """The rig's scenario is `hung` (its gRPC calls then never finish)."""
        return self.snap().rig.scenario is Scenario.HUNG

    def token(self) -> str:
        """The session token Login hands out for this rig."""
        return session_token(self.snap().rig.rig_id, PASSWORD, 24)

    def grpc_service(self) -> GrpcService:
        """The servable gRPC handlers for grpclib."""
        return GrpcService(self)

    def miner_details(self) -> v1.GetMinerDetailsResponse:
        """braiins.bos.v1.MinerService/GetMinerDetails."""
        s = self.snap()
        return v1.GetMinerDetailsResponse(
            uid=s.rig.rig_id, hostname=s.rig.rig_id, mac_address=mac_of(s).lower(),
            miner_identity=v1.MinerIdentity(name=self._model(s), miner_model=self._model(s)),
            bos_version=v1.BosVersion(current=BOS_VERSION, bos_plus=True),
            sticker_hashrate=v1.GigaHashrate(gigahash_per_second=s.expected_gh),
            bosminer_uptime_s=s.uptime_s, system_uptime_s=s.uptime_s + 40)

    def miner_stats(self) -> v1.GetMinerStatsResponse:
        """braiins.bos.v1.MinerService/GetMinerStats."""
        s = self.snap()
        return v1.GetMinerStatsResponse(power_stats=v1.MinerPowerStats(
            approximated_consumption=v1.Power(watt=s.power_w)))

    def hashboards(self) -> v1.GetHashboardsResponse:
        """braiins.bos.v1.MinerService/GetHashboards (a lost board: id and enabled only)."""
        s = self.snap()
        return v1.GetHashboardsResponse(hashboards=[v1.Hashboard(
            id=str(b.index + 1), enabled=True, chips_count=b.chips, serial_number=b.serial,
            board_temp=v1.Temperature(degree_c=b.board_temp_c),
            highest_chip_temp=v1.TemperatureSensor(
                temperature=v1.Temperature(degree_c=b.chip_temp_c)),
            stats=v1.WorkSolverStats(real_hashrate=v1.RealHashrate(
                last_5_s=v1.GigaHashrate(gigahash_per_second=b.hashrate_gh))))
            if b.chips else v1.Hashboard(id=str(b.index + 1), enabled=False)
            for b in s.boards])

    def cooling_state(self) -> v1.GetCoolingStateResponse:
        """braiins.bos.v1.CoolingService/GetCoolingState."""
        s = self.snap()
        return v1.GetCoolingStateResponse(fans=[v1.FanState(position=i, rpm=rpm)
                                                for i, rpm in enumerate(s.fans_rpm)])


class GrpcService:
    """The gRPC methods pyasic's BOSer calls, with BOS's token check."""

    def __init__(self, vendor: Braiins) -> None:
        self.vendor = vendor

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        v = self.vendor
        calls: dict[str, tuple[Callable[[], Any], type, type]] = {
            "MinerService/GetMinerDetails": (v.miner_details, v1.GetMinerDetailsRequest,
                                             v1.GetMinerDetailsResponse),
            "MinerService/GetMinerStats": (v.miner_stats, v1.GetMinerStatsRequest,
                                           v1.GetMinerStatsResponse),
            "MinerService/GetHashboards": (v.hashboards, v1.GetHashboardsRequest,
                                           v1.GetHashboardsResponse),
            "CoolingService/GetCoolingState": (v.cooling_state, v1.GetCoolingStateRequest,
                                               v1.GetCoolingStateResponse),
        }
        out = {f"/braiins.bos.v1.{name}": grpclib.const.Handler(
            self._guarded(build), grpclib.const.Cardinality.UNARY_UNARY, req, resp)
            for name, (build, req, resp) in calls.items()}
        out["/braiins.bos.v1.AuthenticationService/Login"] = grpclib.const.Handler(
            self._login, grpclib.const.Cardinality.UNARY_UNARY, v1.LoginRequest,
            v1.LoginResponse)
        return out

    async def _login(self, stream: grpclib.server.Stream) -> None:
        request = await stream.recv_message()
        if request is None or (request.username, request.password) != (USER, PASSWORD):
            raise grpclib.GRPCError(grpclib.const.Status.UNAUTHENTICATED, "wrong password")
        token = self.vendor.token()
        await stream.send_initial_metadata(metadata={"authorization": token})
        await stream.send_message(v1.LoginResponse(token=token, timeout_s=3600))

    def _guarded(self, build: Callable[[], Any]) -> Callable[[grpclib.server.Stream],
                                                              Any]:
        async def handle(stream: grpclib.server.Stream) -> None:
            if self.vendor.hung():
                await asyncio.sleep(3600)  # accepts the call, never answers
            if stream.metadata is None or stream.metadata.get("authorization") != (
                    self.vendor.token()):
                raise grpclib.GRPCError(grpclib.const.Status.UNAUTHENTICATED)
            await stream.recv_message()
            await stream.send_message(build())
        return handle
