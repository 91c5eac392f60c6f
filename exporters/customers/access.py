"""Each customer's own view, enforced by what its logins can query.

InfluxDB 1.x: one database per customer (the bridge copies the customer's points into it,
the rollup its ledger rows), with a retention policy for the ledger, and one login holding
READ on that database and nothing else (earlier grants on other databases are revoked).
Grafana: one organisation per customer, the customer's login a Viewer there and in no other
organisation, one InfluxDB datasource in that organisation reading with the customer's
database login, and the customer dashboard. Grafana's datasource proxy answers any query a
Viewer sends (`/api/ds/query`), so the database login is the boundary, not the dashboard.

InfluxQL used (1.x grammar, influxql/ast.go): CREATE DATABASE, SHOW/CREATE RETENTION POLICY,
SHOW USERS, CREATE USER, SET PASSWORD FOR, SHOW GRANTS FOR, REVOKE ... ON, GRANT READ ON.
Statements carrying a password travel in the POST body, never in a URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from exporters.sinks.influx_v1 import v1_settings
from hashwatt.config import Config, ConfigError, CustomerConfig
from hashwatt.influxql import InfluxQL, InfluxQLError

RAW_RETENTION = "8w"
DATASOURCE_UID = "hashwatt-customer"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run(db: InfluxQL, statement: str) -> list[dict[str, Any]]:
    """One InfluxQL statement with the statement in the POST body (passwords stay out of
    URLs and so out of access logs)."""
    resp = db.client.post("/query", data={"q": statement})
    if resp.status_code >= 400:
        raise InfluxQLError(f"HTTP {resp.status_code}: {resp.text[:300].strip()}",
                            status=resp.status_code)
    results: list[dict[str, Any]] = resp.json().get("results", [])
    for result in results:
        if "error" in result:
            raise InfluxQLError(result["error"])
    return results


def _rows(db: InfluxQL, statement: str) -> list[dict[str, Any]]:
    out = []
    for result in run(db, statement):
        for series in result.get("series", []):
            out += [dict(zip(series["columns"], v, strict=True))
                    for v in series.get("values", [])]
    return out


def read_password(cfg: Config, c: CustomerConfig) -> str:
    """The customer's read login password (resolved at config load)."""
    password = cfg.secret(c.access.password)
    if not password:
        raise ConfigError([f"{cfg.source}: customers: {c.id}: access.password is required "
                           "for the customer's own view"])
    return password


def setup_influx(cfg: Config, admin: InfluxQL) -> list[str]:
    """Databases, retention policies and read-only logins of every customer (idempotent,
    InfluxDB 1.x); returns what was ensured, one line each."""
    if cfg.influxdb is None or cfg.influxdb.api != "v1":
        raise ConfigError([f"{cfg.source}: influxdb: customer databases are set up here for "
                           "the v1 API; on 2.x create buckets and `influx v1 auth create "
                           "--read-bucket` logins (see README)"])
    influx = v1_settings(cfg)
    version = admin.client.get("/ping").headers.get("X-Influxdb-Version", "")
    if not version.startswith("1."):  # 2.x answers InfluxQL reads only (v1 compatibility)
        raise ConfigError([f"{cfg.source}: influxdb: the server is InfluxDB {version or '?'}: "
                           "customer databases and logins are set up here on 1.x only; on "
                           "2.x follow the README (Hosting customers)"])
    done: list[str] = []
    users = {str(r["user"]) for r in _rows(admin, "SHOW USERS")}
    for c in cfg.customers:
        if not c.has_view:
            done.append(f"customer {c.id}: no view of its own (access.password not set)")
            continue
        password = read_password(cfg, c)
        run(admin, f'CREATE DATABASE "{c.database}"')
        policies = {str(r["name"]) for r in _rows(admin, f'SHOW RETENTION POLICIES ON '
                                                         f'"{c.database}"')}
        for name, duration, default in (("raw", RAW_RETENTION, True),
                                        (influx.ledger_retention_policy, "INF", False)):
            verb = "ALTER" if name in policies else "CREATE"
            run(admin, f'{verb} RETENTION POLICY "{name}" ON "{c.database}" DURATION '
                       f'{duration} REPLICATION 1{" DEFAULT" if default else ""}')
        if c.username in users:
            run(admin, f'SET PASSWORD FOR "{c.username}" = {_quote(password)}')
        else:
            run(admin, f'CREATE USER "{c.username}" WITH PASSWORD {_quote(password)}')
            users.add(c.username)
        for grant in _rows(admin, f'SHOW GRANTS FOR "{c.username}"'):
            if grant["database"] != c.database and grant["privilege"] != "NO PRIVILEGES":
                run(admin, f'REVOKE ALL ON "{grant["database"]}" FROM "{c.username}"')
                done.append(f"user {c.username}: revoked {grant['privilege']} on "
                            f"{grant['database']}")
        run(admin, f'REVOKE ALL ON "{c.database}" FROM "{c.username}"')
        run(admin, f'GRANT READ ON "{c.database}" TO "{c.username}"')
        done.append(f"customer {c.id}: database {c.database} (raw {RAW_RETENTION}, "
                    f"{influx.ledger_retention_policy} forever), user {c.username} READ on "
                    f"{c.database} only")
    return done


def _grafana_password(cfg: Config, c: CustomerConfig) -> str:
    password = cfg.secret(c.access.grafana_password)
    if not password:
        raise ConfigError([f"{cfg.source}: customers: {c.id}: access.grafana_password is "
                           "required for the customer's Grafana login"])
    return password


def setup_customers(cfg: Config) -> list[str]:
    """setup_influx with the admin login `hashwatt init` uses (HASHWATT_INFLUX_ADMIN_USER /
    _PASSWORD; nothing to do without customers that have a view)."""
    from hashwatt.setup import admin_client

    if cfg.influxdb is None or not any(c.has_view for c in cfg.customers):
        return []
    admin = admin_client(cfg.influxdb.url)
    try:
        return setup_influx(cfg, admin)
    finally:
        admin.close()


@dataclass(frozen=True)
class GrafanaCall:
    """One Grafana HTTP API call of the customer set-up."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    org: str | None = None  # the customer whose organisation the call runs in


def datasource(cfg: Config, c: CustomerConfig, influx_url: str) -> dict[str, Any]:
    """The customer's InfluxQL datasource: its own database, its own read login."""
    return {"name": "hashwatt", "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy",
            "url": influx_url, "isDefault": True, "user": c.username,
            "jsonData": {"dbName": c.database, "httpMode": "POST"},
            "secureJsonData": {"password": read_password(cfg, c)}}


def grafana_plan(cfg: Config, influx_url: str) -> list[GrafanaCall]:
    """The calls that give every customer an organisation, a Viewer login that belongs to
    no other organisation, its datasource and its dashboard (pure: no server contact)."""
    from exporters.customers.dashboard import customer_dashboard

    calls: list[GrafanaCall] = []
    for c in (c for c in cfg.customers if c.has_view):
        org = f"customer {c.id}"
        login = c.username
        calls += [
            GrafanaCall("ENSURE_ORG", "/api/orgs", {"name": org}),
            GrafanaCall("ENSURE_USER", "/api/admin/users",
                        {"name": c.name, "login": login, "email": c.billing_contact or "",
                         "password": _grafana_password(cfg, c)}, org=c.id),
            GrafanaCall("ENSURE_MEMBER", "/api/orgs/{org}/users",
                        {"loginOrEmail": login, "role": "Viewer"}, org=c.id),
            GrafanaCall("REMOVE_FROM_OTHER_ORGS", "/api/users/{user}/orgs", {"login": login},
                        org=c.id),
            GrafanaCall("ENSURE_DATASOURCE", "/api/datasources",
                        datasource(cfg, c, influx_url), org=c.id),
            GrafanaCall("POST", "/api/dashboards/db",
                        {"dashboard": customer_dashboard(cfg, c), "overwrite": True,
                         "message": "hashwatt customer set-up"}, org=c.id),
        ]
    return calls


class GrafanaSetup:
    """Runs a grafana_plan against a Grafana server with the admin's basic auth."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.http = httpx.Client(base_url=url, auth=(user, password), timeout=30)
        self.orgs: dict[str, int] = {}

    def _call(self, method: str, path: str, org: int | None = None,
              **kwargs: Any) -> httpx.Response:
        headers = {"X-Grafana-Org-Id": str(org)} if org is not None else {}
        resp = self.http.request(method, path, headers=headers, **kwargs)
        if resp.status_code >= 400 and resp.status_code not in (404, 409, 412):
            raise RuntimeError(f"Grafana {method} {path}: HTTP {resp.status_code}: "
                               f"{resp.text[:200]}")
        return resp

    def apply(self, calls: list[GrafanaCall]) -> list[str]:
        """Run every call idempotently; returns what was ensured."""
        done = []
        customer_orgs: dict[str, int] = {}
        for call in calls:
            org = customer_orgs.get(call.org or "")
            body = call.body or {}
            if call.method == "ENSURE_ORG":
                found = self._call("GET", f"/api/orgs/name/{quote(body['name'], safe='')}")
                org_id = (found.json()["id"] if found.status_code == 200 else
                          self._call("POST", "/api/orgs", json=body).json()["orgId"])
                customer_orgs[body["name"].removeprefix("customer ")] = int(org_id)
                done.append(f"grafana: organisation {body['name']!r} (id {org_id})")
            elif call.method == "ENSURE_USER":
                found = self._call("GET", "/api/users/lookup",
                                   params={"loginOrEmail": body["login"]})
                if found.status_code == 404:
                    self._call("POST", call.path, json={**body, "OrgId": org})
                else:
                    self._call("PUT", f"/api/admin/users/{found.json()['id']}/password",
                               json={"password": body["password"]})
            elif call.method == "ENSURE_MEMBER":
                path = call.path.format(org=org)
                if self._call("POST", path, json=body).status_code == 409:
                    user_id = self._call("GET", "/api/users/lookup",
                                         params={"loginOrEmail": body["loginOrEmail"]}
                                         ).json()["id"]
                    self._call("PATCH", f"{path}/{user_id}", json={"role": "Viewer"})
            elif call.method == "REMOVE_FROM_OTHER_ORGS":
                user_id = self._call("GET", "/api/users/lookup",
                                     params={"loginOrEmail": body["login"]}).json()["id"]
                for member in self._call("GET", f"/api/users/{user_id}/orgs").json():
                    if member["orgId"] != org:
                        self._call("DELETE", f"/api/orgs/{member['orgId']}/users/{user_id}")
                        done.append(f"grafana: {body['login']} removed from org "
                                    f"{member['orgId']}")
                done.append(f"grafana: {body['login']} is a Viewer of org {org} only")
            elif call.method == "ENSURE_DATASOURCE":
                uid = body["uid"]
                if self._call("GET", f"/api/datasources/uid/{uid}", org).status_code == 200:
                    self._call("PUT", f"/api/datasources/uid/{uid}", org, json=body)
                else:
                    self._call("POST", call.path, org, json=body)
                done.append(f"grafana: org {org} datasource reads {body['jsonData']['dbName']} "
                            f"as {body['user']}")
            else:
                self._call(call.method, call.path, org, json=body)
        return done

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()
