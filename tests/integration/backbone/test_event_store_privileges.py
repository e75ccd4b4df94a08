"""The event store is append-only, on the real server: a service's runtime role may SELECT and INSERT it
but not UPDATE, DELETE or TRUNCATE it (permission denied), and a trigger refuses those to the owner and
superusers as well. A service runs with the two roles as deploy/postgres/init creates them (migrations and
rebuild as the owner, everything else as the runtime role), and a database from before the runtime role
gets the same grants. Where the owner migrates beforehand (`python -m services.<name> migrate`, a
Kubernetes initContainer), a service given only the runtime role verifies that nothing is pending and
refuses to start otherwise."""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from backbone.auth import generate_secret
from backbone.db import BACKBONE_MIGRATIONS, MigrationsPending, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.testing.databases import (
    ServiceDatabase,
    apply_service_privileges,
    service_database,
    with_database,
)
from backbone.testing.fixtures import publish, read_topic, unique_name
from backbone.testing.servers import Servers
from backbone.testing.waiting import eventually
from services.inventory.app import SERVICE
from tests.integration.backbone.events import adjustment
from tests.integration.inventory.harness import read_models, receipt, serving, settings, stock_reaches

pytestmark = pytest.mark.integration
store = EventStore()
APPEND_ONLY = "the event store is append-only"
PERMISSION_DENIED = "permission denied for table"


@pytest.fixture
async def database(servers: Servers) -> AsyncIterator[ServiceDatabase]:
    async with service_database(servers.pg_admin_url, unique_name("roles")) as db:
        yield db


async def _migrated(db: ServiceDatabase) -> None:
    conn = await asyncpg.connect(db.migration_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
    finally:
        await conn.close()


async def _append_one(conn: asyncpg.Connection) -> uuid.UUID:
    event = adjustment(f"SKU-{uuid.uuid4().hex[:6]}")
    async with conn.transaction():
        await store.append(conn, f"stock-{event.key}", 0, [event])
    return event.event_id


REWRITES = [
    "UPDATE event_store SET topic = NULL",
    "DELETE FROM event_store",
    "TRUNCATE event_store CASCADE",
]


async def _refusal(conn: asyncpg.Connection, statement: str) -> str:
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        await conn.execute(statement)
    return str(refused.value)


async def _privileges(admin_url: str, database: str, role: str) -> dict[str, str]:
    """Table -> the privileges `role` holds on it, e.g. {'event_store': 'INSERT,SELECT'}."""
    conn = await asyncpg.connect(with_database(admin_url, database))
    try:
        rows = await conn.fetch(
            "SELECT c.relname, string_agg(a.privilege_type, ',' ORDER BY a.privilege_type) AS granted"
            " FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a"
            " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND a.grantee = $1::regrole"
            " GROUP BY c.relname",
            role,
        )
        return {r["relname"]: r["granted"] for r in rows}
    finally:
        await conn.close()


async def test_the_runtime_role_appends_and_reads_but_may_not_rewrite_the_event_store(
    database: ServiceDatabase,
) -> None:
    await _migrated(database)
    runtime = await asyncpg.connect(database.url)
    try:
        event_id = await _append_one(runtime)  # INSERT into event_store and outbox
        assert await runtime.fetchval("SELECT count(*) FROM event_store WHERE event_id = $1", event_id) == 1
        for statement in REWRITES:
            assert f"{PERMISSION_DENIED} event_store" in await _refusal(runtime, statement), statement
        # All it needs on the rest: the relay deletes published rows, the consumer records its inbox.
        assert await runtime.execute("DELETE FROM outbox") == "DELETE 1"
        await runtime.execute("INSERT INTO inbox (event_id) VALUES ($1)", uuid.uuid4())
        await runtime.execute("UPDATE inbox SET consumed_at = now()")
        # Rebuilds, migrations and their record are the owner's.
        assert f"{PERMISSION_DENIED} stock" in await _refusal(runtime, "TRUNCATE stock")
        assert "permission denied for schema public" in await _refusal(runtime, "CREATE TABLE x (y int)")
        refused = await _refusal(runtime, "DELETE FROM schema_migrations")
        assert f"{PERMISSION_DENIED} schema_migrations" in refused
        assert await runtime.fetchval("SELECT count(*) FROM schema_migrations") > 0
    finally:
        await runtime.close()


async def test_the_owner_and_superusers_are_refused_by_the_trigger(
    database: ServiceDatabase, servers: Servers
) -> None:
    await _migrated(database)
    owner = await asyncpg.connect(database.migration_url)
    superuser = await asyncpg.connect(with_database(servers.pg_admin_url, database.owner))
    try:
        event_id = await _append_one(owner)
        for conn in (owner, superuser):
            for statement in REWRITES:
                assert APPEND_ONLY in await _refusal(conn, statement), statement
        row = await owner.fetchrow("SELECT topic, body FROM event_store WHERE event_id = $1", event_id)
        assert row is not None and row["topic"] == "inventory"  # unchanged
        # Read models stay the owner's to rewrite: a rebuild truncates them.
        await owner.execute("TRUNCATE stock, backorder_queue, allocation_audit")
    finally:
        await owner.close()
        await superuser.close()


async def test_a_database_from_before_the_runtime_role_gets_the_same_grants(servers: Servers) -> None:
    async with service_database(servers.pg_admin_url, unique_name("roles"), privileges=False) as db:
        await _migrated(db)  # the owner's tables exist before the runtime role has any grant
        await apply_service_privileges(servers.pg_admin_url, db.owner, db.runtime)
        upgraded = await _privileges(servers.pg_admin_url, db.owner, db.runtime)
    async with service_database(servers.pg_admin_url, unique_name("roles")) as fresh:
        await _migrated(fresh)  # grants from the owner's default privileges, then migration 006
        # Someone grants too much by hand; applying the privileges again takes it back.
        owner = await asyncpg.connect(fresh.migration_url)
        try:
            await owner.execute(f'GRANT UPDATE, DELETE, TRUNCATE ON event_store TO "{fresh.runtime}"')
        finally:
            await owner.close()
        await apply_service_privileges(servers.pg_admin_url, fresh.owner, fresh.runtime)
        created = await _privileges(servers.pg_admin_url, fresh.owner, fresh.runtime)
    full = "DELETE,INSERT,SELECT,UPDATE"
    expected = {table: full for table in created} | {
        "event_store": "INSERT,SELECT",
        "schema_migrations": "SELECT",
    }
    assert created == expected
    assert upgraded == created
    for table in ("outbox", "inbox", "parked_events", "snapshots", "business_keys", "stock"):
        assert created[table] == full, table


async def _cli(env: dict[str, str], *command: str) -> tuple[int, str]:
    """`python -m services.inventory <command>` with `env` (and no database URL of the test process's)."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_MIGRATION_URL")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.inventory",
        *command,
        env={**inherited, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def _rebuild(env: dict[str, str]) -> tuple[int, str]:
    secrets = {"SERVICE_NAME": "inventory", "AUTH_TOKEN_SECRET": generate_secret()}
    return await _cli({**secrets, **env}, "rebuild")


async def _migrate_as(url: str) -> tuple[int, str]:
    """The migrate subcommand as a Kubernetes initContainer runs it: the owner's URL and nothing else."""
    return await _cli({"DATABASE_MIGRATION_URL": url}, "migrate")


async def _applied(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")]
    finally:
        await conn.close()


async def _outbox_empty(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_service_runs_with_the_two_roles_and_rebuilds_as_the_owner(
    database: ServiceDatabase, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("ROLES")
    config = settings(
        database.url, kafka_bootstrap, topic_prefix, database_migration_url=database.migration_url
    )
    # It migrates the empty database as the owner at start; then /health answers 200.
    async with serving(config) as http:
        goods = receipt(sku, 7)
        await publish(producer, f"{topic_prefix}supplier", [goods])
        await stock_reaches(http, sku, on_hand=7)
        published = await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", 1)
        assert sku.encode() in {r.key for r in published}
        runtime = await asyncpg.connect(database.url)
        try:
            assert await runtime.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", goods.event_id)
            await eventually(lambda: _outbox_empty(runtime), what="the relay to empty the outbox")
            assert await runtime.fetchval("SELECT current_user") == database.runtime
        finally:
            await runtime.close()
    before = await read_models(database.migration_url)
    assert [row["on_hand"] for row in before["stock"]] == [7]

    # The runtime role may neither migrate nor truncate the read models: a rebuild needs the owner.
    code, out = await _rebuild({"DATABASE_URL": database.url})
    assert code != 0 and "InsufficientPrivilegeError: permission denied for" in out, out
    code, out = await _rebuild(
        {"DATABASE_URL": database.url, "DATABASE_MIGRATION_URL": database.migration_url}
    )
    assert code == 0 and "rebuilt" in out, out
    assert await read_models(database.migration_url) == before


FILES = migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations)
PENDING = "migrations pending"
ADVICE = "run `python -m services.inventory migrate` with DATABASE_MIGRATION_URL (the owner)"


async def test_migrate_as_the_owner_then_the_service_runs_as_the_runtime_role_alone(
    database: ServiceDatabase, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    code, out = await _migrate_as(database.migration_url)
    assert code == 0, out
    assert all(f"applied {name}" in out for name, _ in FILES), out
    assert await _applied(database.url) == sorted(name for name, _ in FILES)
    code, out = await _migrate_as(database.migration_url)  # again: nothing to do
    assert code == 0 and f"migrations: 0 applied now, {len(FILES)} before" in out, out

    # No DATABASE_MIGRATION_URL: it verifies as the runtime role that nothing is pending, and works.
    config = settings(database.url, kafka_bootstrap, topic_prefix)
    assert config.migration_url == database.url
    sku = unique_name("RUNTIME")
    async with serving(config) as http:
        assert (await http.get("/health/ready")).status_code == 200
        await publish(producer, f"{topic_prefix}supplier", [receipt(sku, 3)])
        await stock_reaches(http, sku, on_hand=3)
    assert await _applied(database.url) == sorted(name for name, _ in FILES)


async def test_the_runtime_role_refuses_to_start_while_migrations_are_pending(
    database: ServiceDatabase, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # An empty database (no schema_migrations yet): the runtime role may create nothing.
    runtime = await asyncpg.connect(database.url)
    try:
        with pytest.raises(MigrationsPending) as refused:
            await migrate(runtime, FILES, service=SERVICE.name)
        assert refused.value.pending == [name for name, _ in FILES]
        assert await runtime.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await runtime.close()

    # A release with a new migration the owner has not applied yet.
    (newest, _) = FILES[-1]
    owner = await asyncpg.connect(database.migration_url)
    try:
        await migrate(owner, FILES[:-1])
    finally:
        await owner.close()
    env = {
        "SERVICE_NAME": "inventory",
        "AUTH_TOKEN_SECRET": generate_secret(),
        "DATABASE_URL": database.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PREFIX": topic_prefix,
        "TOPIC_AUTO_CREATE": "false",
        "HTTP_PORT": "0",
    }
    code, out = await _cli(env)  # run it
    assert code != 0, out
    assert f"{PENDING} ({newest})" in out and ADVICE in out, out
    assert "Traceback" not in out, out
    assert newest not in await _applied(database.url)  # it changed nothing

    # The owner's migrate applies just that one; then the runtime role has nothing left to verify.
    code, out = await _migrate_as(database.migration_url)
    assert code == 0 and f"applied {newest}" in out and "migrations: 1 applied now" in out, out
    runtime = await asyncpg.connect(database.url)
    try:
        assert await migrate(runtime, FILES, service=SERVICE.name) == []
    finally:
        await runtime.close()


async def test_migrate_as_the_runtime_role_says_who_must_run_it(database: ServiceDatabase) -> None:
    code, out = await _cli({"DATABASE_URL": database.url}, "migrate")
    assert code != 0 and PENDING in out and ADVICE in out, out
    assert "Traceback" not in out, out
