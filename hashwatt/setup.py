"""`hashwatt init CONFIG`: create what the bridge, the reports and Grafana need in InfluxDB 1.x,
idempotently: the database, its retention policies, the ledger's database (or retention
policy), the bridge's write login and read-only logins for Grafana.

Passwords never travel on the command line: the admin password comes from
HASHWATT_INFLUX_ADMIN_PASSWORD, the bridge's from the config, each reader's from the
environment variable named in `--reader NAME:ENVVAR`. InfluxDB 2.x is set up by the compose
stack's init script (deploy/influxdb/init/10-hashwatt.sh), which uses the `influx` CLI.

InfluxQL used here, all of it in InfluxDB 1.x's own grammar (influxql/ast.go): CREATE DATABASE
(a no-op when it exists), SHOW RETENTION POLICIES / CREATE|ALTER RETENTION POLICY, SHOW USERS,
CREATE USER / SET PASSWORD FOR, GRANT ALL|READ ON. With auth-enabled and no user at all, 1.x
accepts only `CREATE USER ... WITH ALL PRIVILEGES` without credentials (services/httpd
handler: the "create admin user first" exception), which is how the first admin is made.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Protocol

from hashwatt.config import Config, ConfigError, SecretSpec
from hashwatt.influxql import InfluxQL, InfluxQLError

log = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DURATION = re.compile(r"^(INF|\d+[hdw])$")


@dataclass(frozen=True)
class Login:
    """A database login and the access it gets."""

    user: str
    password: str
    access: str  # ALL (write and read) | READ


@dataclass(kw_only=True)
class Plan:
    """Everything `init` makes sure of."""

    database: str
    raw_retention: str
    ledger_database: str | None
    ledger_policy: str
    logins: dict[str, list[tuple[str, Login]]] = field(default_factory=dict)  # db -> logins


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _checked(kind: str, value: str, pattern: re.Pattern[str] = NAME) -> str:
    if not pattern.match(value):
        raise ConfigError([f"hashwatt init: {kind} {value!r} has the wrong form "
                           f"(expected {pattern.pattern})"])
    return value


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError([f"hashwatt init: {what}: environment variable {name} is not set"])
    return value


class V1Database(Protocol):
    """What `hashwatt init` reads of [influxdb]: the v1 sink's config
    (exporters.sinks.influx_v1.InfluxV1Config), handed in by the CLI: the vocabulary does not
    import the sinks."""

    @property
    def database(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> SecretSpec | None: ...
    @property
    def ledger_database(self) -> str | None: ...
    @property
    def ledger_retention_policy(self) -> str: ...


def plan(cfg: Config, *, readers: list[str], ops_readers: list[str],
         raw_retention: str = "8w", influx: V1Database | None) -> Plan:
    """What the config (its v1 [influxdb], None for another sink) and the reader options ask
    for (no server contact)."""
    if influx is None or not influx.database:
        raise ConfigError([f"{cfg.source}: influxdb: `hashwatt init` sets up the v1 API "
                           "(api = \"v1\", database, username, password)"])
    ledger_db = influx.ledger_database
    p = Plan(database=_checked("database", influx.database),
             raw_retention=_checked("retention", raw_retention, DURATION),
             ledger_database=_checked("ledger database", ledger_db) if ledger_db else None,
             ledger_policy=_checked("ledger retention policy", influx.ledger_retention_policy))
    ops, ledger = p.database, ledger_db or p.database
    if influx.username:
        writer = Login(_checked("user", influx.username), cfg.secret(influx.password) or "",
                       "ALL")
        if not writer.password:
            raise ConfigError([f"{cfg.source}: influxdb.password: the bridge's login needs one"])
        p.logins.setdefault(ops, []).append(("writer", writer))
        if ledger != ops:
            p.logins.setdefault(ledger, []).append(("writer", writer))
    for spec, databases in [(s, {ops, ledger}) for s in readers] + [(s, {ops})
                                                                    for s in ops_readers]:
        user, _, env = spec.partition(":")
        login = Login(_checked("user", user), _env(env, f"reader {user}"), "READ")
        for db in sorted(databases):
            p.logins.setdefault(db, []).append(("reader", login))
    return p


def _policies(db: InfluxQL, database: str) -> dict[str, dict[str, object]]:
    rows = db.rows(f'SHOW RETENTION POLICIES ON "{database}"')
    return {str(r["name"]): r for r in rows}


def _ensure_policy(db: InfluxQL, database: str, name: str, duration: str,
                   default: bool) -> None:
    verb = "ALTER" if name in _policies(db, database) else "CREATE"
    db.execute(f'{verb} RETENTION POLICY "{name}" ON "{database}" DURATION {duration} '
               f'REPLICATION 1{" DEFAULT" if default else ""}')


def _ensure_user(db: InfluxQL, login: Login, known: set[str]) -> None:
    if login.user in known:
        db.execute(f'SET PASSWORD FOR "{login.user}" = {_quote(login.password)}')
    else:
        db.execute(f'CREATE USER "{login.user}" WITH PASSWORD {_quote(login.password)}')
        known.add(login.user)


def admin_client(url: str) -> InfluxQL:
    """A client with the admin login; the first admin is created on a server without users.
    (Also used by `hashwatt customers setup`.)"""
    user = os.environ.get("HASHWATT_INFLUX_ADMIN_USER", "")
    password = os.environ.get("HASHWATT_INFLUX_ADMIN_PASSWORD", "")
    anonymous = InfluxQL(url, "")
    try:
        anonymous.execute("SHOW USERS")  # answers only with auth-enabled = false
    except InfluxQLError as exc:
        if exc.status not in (401, 403) and "create admin user first" not in str(exc):
            anonymous.close()
            raise  # not a question of logging in: a broken server (5xx) says so itself
        try:
            if not user or not password:
                raise ConfigError(["hashwatt init: the server requires authentication: set "
                                   "HASHWATT_INFLUX_ADMIN_USER and "
                                   "HASHWATT_INFLUX_ADMIN_PASSWORD"]) from None
            if "create admin user first" in str(exc):
                anonymous.execute(f'CREATE USER "{_checked("user", user)}" WITH PASSWORD '
                                  f'{_quote(password)} WITH ALL PRIVILEGES')
                log.info("init: created the admin user %s", user)
        finally:
            anonymous.close()
        return InfluxQL(url, "", username=user, password=password)
    return anonymous  # auth-enabled = false: the anonymous client is the admin (kept open)


def apply(url: str, p: Plan) -> list[str]:
    """Make the server match the plan; returns what was done, one line each."""
    db = admin_client(url)
    done: list[str] = []
    try:
        db.execute(f'CREATE DATABASE "{p.database}"')
        _ensure_policy(db, p.database, "raw", p.raw_retention, default=True)
        done.append(f"database {p.database}: retention policy raw ({p.raw_retention}), default")
        if p.ledger_database:
            db.execute(f'CREATE DATABASE "{p.ledger_database}"')
            _ensure_policy(db, p.ledger_database, "forever", "INF", default=True)
            done.append(f"database {p.ledger_database}: the ledger, kept forever")
        else:
            _ensure_policy(db, p.database, p.ledger_policy, "INF", default=False)
            done.append(f"database {p.database}: retention policy {p.ledger_policy} (forever)")
        known = {str(r["user"]) for r in db.rows("SHOW USERS")}
        for database, logins in sorted(p.logins.items()):
            for role, login in logins:
                _ensure_user(db, login, known)
                db.execute(f'GRANT {login.access} ON "{database}" TO "{login.user}"')
                done.append(f"user {login.user} ({role}): {login.access} on {database}")
    finally:
        db.close()
    return done
