"""A small InfluxQL client over the v1 `/query` API (InfluxDB 1.x, 2.x DBRP, 3.x)."""

from __future__ import annotations

from typing import Any

import httpx

from hashwatt.errors import SinkError


class InfluxQLError(SinkError, RuntimeError):
    """The server answered the query with an error (`status`: its HTTP status, 0 for an
    error inside a 200 answer; `url`: the server)."""

    def __init__(self, message: str, *, status: int = 0, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class InfluxQL:
    """Run InfluxQL statements and return rows as dicts."""

    def __init__(self, url: str, database: str, *, username: str | None = None,
                 password: str | None = None, timeout_s: float = 30.0,
                 token: str | None = None) -> None:
        auth = (username, password or "") if username else None
        headers = {"Authorization": f"Token {token}"} if token else None
        self.client = httpx.Client(base_url=url, auth=auth, timeout=timeout_s, headers=headers)
        self.database = database

    def execute(self, statement: str) -> list[dict[str, Any]]:
        """Run one statement (POST, so writes like CREATE DATABASE work too)."""
        resp = self.client.post("/query", params={"db": self.database, "q": statement,
                                                  "epoch": "ms"})
        if resp.status_code >= 400:
            raise InfluxQLError(f"HTTP {resp.status_code}: {resp.text[:300].strip()}",
                                status=resp.status_code, url=str(self.client.base_url))
        try:
            results = resp.json().get("results", [])
        except (ValueError, AttributeError):  # a proxy's or another server's page
            raise InfluxQLError(f"HTTP {resp.status_code} without an InfluxDB answer (not "
                                f"JSON results): is InfluxDB at this URL?",
                                status=resp.status_code, url=str(self.client.base_url)) from None
        for result in results:
            if "error" in result:
                raise InfluxQLError(result["error"])
        return results

    def rows(self, statement: str) -> list[dict[str, Any]]:
        """Every row of every series, each with its series' tags merged in."""
        out = []
        for result in self.execute(statement):
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    out.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return out

    def create_database(self) -> None:
        """CREATE DATABASE (idempotent)."""
        self.execute(f'CREATE DATABASE "{self.database}"')

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
