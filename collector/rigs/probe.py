"""A bounded look at a rig before pyasic identifies it: pyasic 0.79's factory reads every
identification reply whole (`MinerFactory._web_ping` uses `resp.text`, `_socket_ping` reads
4028 to EOF, `send_web_command` reads `/api/system/info` whole), so a rig that answers with
64 MB or never stops would cost the collector hundreds of MB. We send the same requests first,
each read bounded in bytes and time; a reply over the bound means pyasic is not asked."""

from __future__ import annotations

import asyncio
import json
import ssl

import httpx

from collector.rigs.base import RPC_PORT
from hashwatt.errors import RigError

# the largest real identification reply in shared/reference/miner-api is ~30 KB (LuxOS
# healthchipget; a Bitaxe /api/system/info is ~2 KB, an AxeOS / page a few KB): 1 MB is far
# above any real miner and far below what hurts the collector
PROBE_LIMIT = 1 << 20

# pages pyasic's factory reads after it recognised the web page (`get_miner_model_*`):
# marker in GET / -> path read whole (pyasic 0.79 miners/factory.py)
FOLLOW_UPS: dict[str, str] = {
    "AxeOS": "/api/system/info",        # get_miner_model_bitaxe
    "Lucky miner": "/api/system/info",  # get_miner_model_luckyminer
    "cloud-box": "/mcb/status",         # get_miner_model_goldshell
    "Fluminer": "/api/overview",        # get_miner_model_fluminer
}


# pyasic asks https without verifying (`settings.transport(verify=False)`): so do we, with
# one context for every probe (building one per client loads the CA bundle)
_NO_VERIFY = ssl.create_default_context()
_NO_VERIFY.check_hostname = False
_NO_VERIFY.verify_mode = ssl.CERT_NONE


# a flood is what fills memory, and a flood does not pause: a probe that waits this long for
# the next bytes ends without a verdict (pyasic's own 1 s idle reads and 3 s limit then bound
# what a slow reply can cost). It also keeps the probe cheap where a port never answers a
# request it does not understand (ePIC's web server on 4028 waits for an HTTP request line).
IDLE_S = 0.3
CONNECT_S = 1.0  # a LAN connect takes milliseconds; longer means nobody is there


class _Over(RigError):
    """A reply over the bound, with where it came from."""


async def _web(client: httpx.AsyncClient, url: str, where: str) -> str:
    """The body of a bounded GET (decoded leniently); raises _Over past the bound."""
    async with client.stream("GET", url) as resp:  # read timeout: IDLE_S between bytes
        body = bytearray()
        async for chunk in resp.aiter_raw():
            body += chunk
            if len(body) > PROBE_LIMIT:
                raise _Over(where)
    return body.decode(errors="replace")


async def _rpc(ip: str, command: str, timeout: float) -> None:
    """One bounded CGMiner request on 4028 (what `_socket_ping` sends); raises _Over."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, RPC_PORT),
                                            min(timeout, CONNECT_S))
    try:
        writer.write(json.dumps({"command": command}).encode())
        await writer.drain()
        size = 0
        while chunk := await asyncio.wait_for(reader.read(65536), IDLE_S):
            size += len(chunk)
            if size > PROBE_LIMIT:
                raise _Over(f"port {RPC_PORT} ({command})")
    finally:
        writer.close()


async def _pages(ip: str, timeout: float) -> None:
    """GET / on 80 and 443 (as `_get_miner_web`), then the page pyasic would read next."""
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=0)
    timeouts = httpx.Timeout(timeout, connect=min(timeout, CONNECT_S), read=IDLE_S)
    async with httpx.AsyncClient(timeout=timeouts, limits=limits, verify=_NO_VERIFY) as client:
        for scheme, port in (("http", 80), ("https", 443)):
            try:
                text = await _web(client, f"{scheme}://{ip}/", f"port {port}")
            except _Over:
                raise
            except Exception:  # nothing there (refused, TLS, timeout): pyasic finds nothing
                continue
            path = next((p for mark, p in FOLLOW_UPS.items() if mark in text), None)
            if path is not None:
                try:
                    await _web(client, f"{scheme}://{ip}{path}", f"port {port} ({path})")
                except _Over:
                    raise
                except Exception:  # pyasic copes with a missing page itself
                    pass
            return


async def _quietly(coro: object, timeout: float) -> None:
    """Run a probe; only an over-bound reply counts (refused, slow, odd: pyasic decides)."""
    try:
        await asyncio.wait_for(coro, timeout)  # type: ignore[arg-type]
    except _Over:
        raise
    except Exception:
        pass


async def oversize(ip: str, timeout: float) -> str | None:
    """Why pyasic must not identify this rig (a reply over the bound), or None."""
    probes = [_pages(ip, timeout), _rpc(ip, "version", timeout), _rpc(ip, "devdetails", timeout)]
    results = await asyncio.gather(*(_quietly(p, timeout) for p in probes),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, _Over):
            return f"reply over {PROBE_LIMIT >> 20} MB on {result}: not a miner?"
    return None
