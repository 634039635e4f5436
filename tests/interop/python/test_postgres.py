"""The PostgreSQL bridge against a real PostgreSQL: SQL functions called from Autobahn|Python
(arguments by position and name, defaults, variadic, SETOF as one array and as progressive
results, void, bigint, bytea, the raw convention), SQL errors as WAMP errors, the caller's
identity in SQL (row-level security through wamp.authid()), statement and call timeouts that
cancel the query, and events published from SQL and triggers (large ones through the spill
table, none from a rolled-back transaction, a listener killed and reconnected), the outbox tier
losing nothing when the publishing node dies, and two nodes sharing one database.

The database server is $DATABASE_URL's (host, port, user) when set, else 127.0.0.1:5432 as
user postgres; each run creates its own database and roles and drops them at the end.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import time
import urllib.parse
import uuid

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions

import pg_cluster
from interop_client import bounded, close_all, connect_with, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command, switchboard_bin

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("runs Switchboard's node only", allow_module_level=True)


def server() -> dict:
    url = urllib.parse.urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    return {"host": url.hostname or "127.0.0.1", "port": url.port or 5432, "user": url.username or "postgres"}


def psql(sql: str, database: str = "postgres", check: bool = True, at: dict | None = None) -> str:
    s = at or server()
    proc = subprocess.run(
        ["psql", "-h", s["host"], "-p", str(s["port"]), "-U", s["user"], "-d", database,
         "-v", "ON_ERROR_STOP=1", "-Atq"],
        input=sql, capture_output=True, text=True, timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"psql failed ({proc.returncode}): {proc.stderr}\n--- SQL ---\n{sql[:2000]}")
    return proc.stdout


_fallback_cluster = None


def require_server():
    """The server of DATABASE_URL, else 127.0.0.1:5432; when neither answers (and DATABASE_URL
    is not set), a throwaway cluster of this run's own (pg_cluster.py)."""
    global _fallback_cluster
    try:
        psql("SELECT 1")
        return
    except (AssertionError, FileNotFoundError, subprocess.TimeoutExpired) as e:
        if "DATABASE_URL" in os.environ or shutil.which("psql") is None:
            pytest.fail(
                f"PostgreSQL is not reachable at {server()} ({e}). The PostgreSQL bridge tests need a "
                "server and psql: install PostgreSQL (Debian: apt-get install postgresql "
                "postgresql-client), or set DATABASE_URL to a server with trust authentication."
            )
        unreachable = e
    try:
        _fallback_cluster = pg_cluster.Cluster().start()
    except RuntimeError as e:
        pytest.fail(f"PostgreSQL is not reachable at {server()} ({unreachable}), and no throwaway "
                    f"cluster could be started: {e}")
    atexit.register(_fallback_cluster.stop)
    os.environ["DATABASE_URL"] = _fallback_cluster.url()
    psql("SELECT 1")


def wait_for_log(node, *texts: str, timeout: float = 20) -> None:
    """Until the node's log holds each of `texts` (the bridge logs what it has done)."""
    deadline = time.monotonic() + timeout
    while not all(t in node.log_path.read_text(errors="replace") for t in texts):
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.05)


async def subscribed(node, topic: str):
    """An Autobahn|Python client of the node subscribed to `topic`, and the list its events go to."""
    c = await connect_with({"type": "websocket", "url": f"ws://127.0.0.1:{node.port}/ws",
                            "serializers": ["json"]}, "websocket", "json")
    got = []
    await c.session.subscribe(got.append, topic)
    return c, got


def setup_sql(anon: str, login: str) -> str:
    return f"""
CREATE ROLE {anon} NOLOGIN;
GRANT {anon} TO {login};
GRANT SELECT, DELETE ON wamp.event_buffer TO {login};
GRANT SELECT, DELETE ON wamp.outbox TO {login};
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO {anon};

CREATE FUNCTION api.add2(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION api.greet(name text, greeting text DEFAULT 'hello') RETURNS text LANGUAGE sql
  AS $$ SELECT greeting || ', ' || name $$;
CREATE FUNCTION api.total(VARIADIC nums int[]) RETURNS int LANGUAGE sql
  AS $$ SELECT sum(n)::int FROM unnest(nums) n $$;
CREATE FUNCTION api.over(a int) RETURNS int LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION api.over(a text) RETURNS text LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION api.series(n int) RETURNS SETOF int LANGUAGE sql AS $$ SELECT generate_series(1, n) $$;
CREATE FUNCTION api.people() RETURNS TABLE(name text, age int) LANGUAGE sql
  AS $$ VALUES ('ann', 31), ('bob', 42) $$;
CREATE FUNCTION api.person() RETURNS TABLE(name text, age int) LANGUAGE sql
  AS $$ VALUES ('ann', 31) $$;
CREATE FUNCTION api.nothing() RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION api.big() RETURNS bigint LANGUAGE sql AS $$ SELECT 9007199254740993::bigint $$;
CREATE FUNCTION api.blob() RETURNS bytea LANGUAGE sql AS $$ SELECT '\\x00ff10'::bytea $$;
CREATE FUNCTION api.raw(args jsonb, kwargs jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT jsonb_build_object('args', args || '["from sql"]'::jsonb, 'kwargs', kwargs) $$;
CREATE FUNCTION api.whoami() RETURNS jsonb LANGUAGE sql STABLE
  AS $$ SELECT jsonb_build_object('authid', wamp.authid(), 'authrole', wamp.authrole(),
                                  'session', wamp.session(), 'role', current_user::text) $$;
CREATE FUNCTION api.fail() RETURNS void LANGUAGE plpgsql
  AS $$ BEGIN PERFORM wamp.raise('com.example.error.custom', '[1, 2]', '{{"why": "testing"}}'); END $$;
CREATE TABLE private_things (x int);
CREATE FUNCTION api.read_private() RETURNS int LANGUAGE sql AS $$ SELECT count(*)::int FROM private_things $$;
CREATE TABLE uniq (k text PRIMARY KEY);
GRANT INSERT ON uniq TO {anon};
CREATE FUNCTION api.claim(k text) RETURNS void LANGUAGE sql AS $$ INSERT INTO uniq VALUES (k) $$;
CREATE FUNCTION api.echo_bytes(b bytea) RETURNS bytea LANGUAGE sql AS $$ SELECT b $$;
CREATE FUNCTION api.leak() RETURNS void LANGUAGE sql
  AS $$ SELECT set_config('wamp.leaky', 'yes', false), set_config('search_path', 'pg_temp', false) $$;
CREATE FUNCTION api.peek() RETURNS text LANGUAGE sql
  AS $$ SELECT coalesce(current_setting('wamp.leaky', true), '') || '|' || current_setting('search_path') $$;
CREATE FUNCTION api.sleep(s float8) RETURNS int LANGUAGE sql AS $$ SELECT 1 FROM pg_sleep(s) $$;
CREATE FUNCTION api.become_anon() RETURNS text LANGUAGE sql AS $$ SELECT set_config('role', '{anon}', false) $$;

CREATE TABLE notes (id serial PRIMARY KEY, owner text NOT NULL DEFAULT wamp.authid(), body text NOT NULL);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON notes USING (owner = wamp.authid()) WITH CHECK (owner = wamp.authid());
GRANT SELECT, INSERT ON notes TO {anon};
GRANT USAGE ON SEQUENCE notes_id_seq TO {anon};
CREATE FUNCTION api.add_note(body text) RETURNS void LANGUAGE sql
  AS $$ INSERT INTO notes (body) VALUES (body) $$;
CREATE FUNCTION api.my_notes() RETURNS SETOF text LANGUAGE sql STABLE
  AS $$ SELECT body FROM notes ORDER BY id $$;
CREATE FUNCTION notes_published() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM wamp.publish('com.example.note.on_insert', jsonb_build_array(NEW.body),
                       jsonb_build_object('owner', NEW.owner));
  RETURN NEW;
END $$;
CREATE TRIGGER notes_published AFTER INSERT ON notes FOR EACH ROW EXECUTE FUNCTION notes_published();
CREATE FUNCTION api.shout(size int) RETURNS void LANGUAGE sql
  AS $$ SELECT wamp.publish('com.example.big', jsonb_build_array(repeat('x', size))) $$;

-- The subscriber's sinks run as the bridge's login role.
GRANT INSERT ON wamp.inbox TO {login};
GRANT USAGE ON SEQUENCE wamp.inbox_id_seq TO {login};
CREATE SCHEMA sink;
GRANT USAGE ON SCHEMA sink TO {login};
CREATE TABLE sink.chat_seen (topic text, body text, publisher_authid text);
GRANT INSERT ON sink.chat_seen TO {login};
CREATE FUNCTION sink.on_chat(topic text, args jsonb, kwargs jsonb, details jsonb) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO sink.chat_seen VALUES (topic, args->>0, wamp.authid()) $$;
GRANT EXECUTE ON FUNCTION sink.on_chat(text, jsonb, jsonb, jsonb) TO {login};

-- The second component calls as the login role itself (no role map).
GRANT USAGE ON SCHEMA api TO {login};
GRANT EXECUTE ON FUNCTION api.add2(int, int), api.greet(text, text), api.whoami(), api.leak(), api.peek(),
  api.sleep(float8), api.echo_bytes(bytea), api.series(int), api.fail(), api.raw(jsonb, jsonb), api.claim(text),
  api.become_anon() TO {login};
GRANT INSERT ON uniq TO {login};

GRANT EXECUTE ON FUNCTION api.add2(int, int), api.greet(text, text), api.total(int[]), api.over(int),
  api.over(text), api.series(int), api.people(), api.person(), api.nothing(), api.big(), api.blob(),
  api.raw(jsonb, jsonb), api.whoami(), api.fail(), api.read_private(), api.claim(text),
  api.sleep(float8), api.echo_bytes(bytea), api.leak(), api.peek(), api.add_note(text), api.my_notes(), api.shout(int) TO {anon};
"""


@pytest.fixture(scope="module")
def bridge():
    require_server()
    tag = uuid.uuid4().hex[:10]
    database, login, anon = f"sbtest_{tag}", f"sb_{tag}_login", f"sb_{tag}_anon"
    psql(f"CREATE DATABASE {database}")
    psql(f"CREATE ROLE {login} LOGIN NOINHERIT")
    helper = subprocess.run([str(switchboard_bin()), "postgres", "sql"], capture_output=True, text=True, check=True)
    psql(helper.stdout, database)
    psql(setup_sql(anon, login), database)
    port = free_tcp_port()
    s = server()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [
                    {"uri": "", "match": "prefix", "allow": {"call": True, "subscribe": True}},
                    {"uri": "com.example.chat.", "match": "prefix", "allow": {"publish": True},
                     "disclose": {"publisher": True}},
                    {"uri": "com.example.log", "allow": {"publish": True}}]},
                {"name": "db_bridge", "permissions": [
                    {"uri": "com.example.", "match": "prefix",
                     "allow": {"register": True, "publish": True, "subscribe": True}},
                    {"uri": "switchboard.postgres.", "match": "prefix", "allow": {"publish": True}}]},
            ]}],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {"ws": {"type": "websocket"}},
            }],
            "connections": [{
                "id": "db1", "type": "postgres", "host": s["host"], "port": s["port"],
                "database": database, "user": login,
                "options": {"max_connections": 4, "application_name": f"sb-{tag}"},
            }, {
                "id": "db2", "type": "postgres", "host": s["host"], "port": s["port"],
                "database": database, "user": login,
                "options": {"max_connections": 4, "application_name": f"sb-{tag}-plain"},
            }],
            "components": [{
                "type": "postgresql", "id": "pg", "realm": "realm1", "role": "db_bridge",
                "connection": "db1",
                "callee": {
                    "schemas": [{"schema": "api", "prefix": "com.example.api."}],
                    "procedures": [
                        {"uri": "com.example.over_int", "function": "api.over(int)"},
                        {"uri": "com.example.person_kwargs", "function": "api.person", "result": "kwargs"},
                        {"uri": "com.example.quick_sleep", "function": "api.sleep", "timeout": 300},
                        {"uri": "com.example.claim_read_only", "function": "api.claim", "read_only": True},
                    ],
                    "roles": {"mode": "map", "map": {"anonymous": anon}},
                },
                "publisher": {"mode": "notify"},
                "subscriber": {
                    "subscriptions": [
                        {"topic": "com.example.chat.", "match": "prefix", "function": "sink.on_chat"},
                        {"topic": "com.example.log", "insert": "wamp.inbox"},
                    ],
                    "batch": {"max_rows": 100, "max_delay_ms": 20},
                },
            }, {
                # No role map: calls run as the login role (one prepared statement each).
                "type": "postgresql", "id": "pg_plain", "realm": "realm1", "role": "db_bridge",
                "connection": "db2",
                "callee": {
                    "procedures": [
                        {"uri": f"com.example.plain.{name}", "function": f"api.{name}"}
                        for name in ("add2", "greet", "whoami", "leak", "peek", "sleep", "echo_bytes",
                                     "series", "fail", "raw", "claim", "become_anon")
                    ] + [{"uri": "com.example.plain.claim_read_only", "function": "api.claim", "read_only": True}],
                    "max_timeout": 1000,
                },
            }],
        }],
    }
    router = launch_router(make_node_dir("switchboard"), config, [port])
    try:
        # The bridge registers once it has read the functions.
        deadline = time.monotonic() + 20
        while router.log_path.read_text(errors="replace").count("registered com.example") < 2:
            assert time.monotonic() < deadline, router.log_tail()
            time.sleep(0.05)
        yield {"router": router, "database": database, "tag": tag, "anon": anon, "config": config}
    finally:
        router.close()
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", check=False)
        psql(f"DROP ROLE IF EXISTS {anon}; DROP ROLE IF EXISTS {login}", check=False)


def ws(router) -> dict:
    return {"type": "websocket", "url": f"ws://127.0.0.1:{router.port}/ws", "serializers": ["json"]}


async def client(b):
    return await connect_with(ws(b["router"]), "websocket", "json")


async def error_of(awaitable) -> ApplicationError:
    try:
        await bounded(awaitable, "the call")
    except ApplicationError as e:
        return e
    raise AssertionError("the call succeeded")


def test_sql_functions_are_called_with_wamp_arguments_and_results(bridge):
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            assert await s.call("com.example.api.add2", 2, 3) == 5
            assert await s.call("com.example.api.add2", a=2, b=40) == 42
            assert await s.call("com.example.api.add2", 1, b=1) == 2
            assert await s.call("com.example.api.greet", "ann") == "hello, ann"
            assert await s.call("com.example.api.greet", "bob", greeting="hi") == "hi, bob"
            assert await s.call("com.example.api.total", [1, 2, 3, 4]) == 10
            assert await s.call("com.example.api.series", 3) == [1, 2, 3]
            assert await s.call("com.example.api.people") == [{"name": "ann", "age": 31}, {"name": "bob", "age": 42}]
            assert await s.call("com.example.api.person") == [{"name": "ann", "age": 31}]
            assert await s.call("com.example.api.nothing") is None
            assert await s.call("com.example.api.big") == 9007199254740993
            assert await s.call("com.example.api.blob") == b"\x00\xff\x10"
            assert await s.call("com.example.api.echo_bytes", b"\x00\x01binary") == b"\x00\x01binary"
            raw = await s.call("com.example.api.raw", 1, k="v")
            assert (list(raw.results), raw.kwresults) == ([1, "from sql"], {"k": "v"}), raw
            assert await s.call("com.example.over_int", 7) == 7
            kw = await s.call("com.example.person_kwargs")
            assert kw.kwresults == {"name": "ann", "age": 31} and not kw.results, kw
            # An overloaded name is not registered (only a configured signature is).
            e = await error_of(s.call("com.example.api.over", 1))
            assert e.error == "wamp.error.no_such_procedure", e
            # SETOF as progressive results when the caller asks for them.
            rows = []
            result = await s.call("com.example.api.series", 4, options=CallOptions(on_progress=rows.append))
            assert rows == [1, 2, 3, 4] and result is None, (rows, result)
        finally:
            await close_all(c)

    run(scenario())


def test_sql_errors_become_wamp_errors(bridge):
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            e = await error_of(s.call("com.example.api.add2", "x", 1))
            assert e.error == "wamp.error.invalid_argument" and e.kwargs["sqlstate"] == "22P02", e
            e = await error_of(s.call("com.example.api.add2", 1, 2, 3))
            assert e.error == "wamp.error.invalid_argument", e
            e = await error_of(s.call("com.example.api.add2", 1, c=2))
            assert e.error == "wamp.error.invalid_argument", e
            e = await error_of(s.call("com.example.api.fail"))
            assert (e.error, list(e.args), e.kwargs) == ("com.example.error.custom", [1, 2], {"why": "testing"}), e
            e = await error_of(s.call("com.example.api.read_private"))
            assert e.error == "wamp.error.not_authorized" and e.kwargs["sqlstate"] == "42501", e
            key = uuid.uuid4().hex
            await s.call("com.example.api.claim", key)
            e = await error_of(s.call("com.example.api.claim", key))
            assert e.error == "switchboard.error.sql" and e.kwargs["sqlstate"] == "23505", e
            # A read-only procedure's transaction is read-only.
            e = await error_of(s.call("com.example.claim_read_only", uuid.uuid4().hex))
            assert e.error == "switchboard.error.sql" and e.kwargs["sqlstate"] == "25006", e
            # Quotes and backslashes in arguments are data, not SQL.
            assert await s.call("com.example.api.greet", "o'brien \\ \"x\"", greeting="it's") == "it's, o'brien \\ \"x\""
            # The connection is fine after all of that.
            assert await s.call("com.example.api.add2", 1, 1) == 2
        finally:
            await close_all(c)

    run(scenario())


def test_sql_knows_the_caller_and_row_level_security_holds(bridge):
    async def scenario():
        a = await client(bridge)
        b = await client(bridge)
        try:
            me = await a.session.call("com.example.api.whoami")
            assert me["authid"] == a.join_details.authid and me["authrole"] == "anonymous", me
            assert me["session"] == a.join_details.session and me["role"] == bridge["anon"], me
            await a.session.call("com.example.api.add_note", "a's note")
            await b.session.call("com.example.api.add_note", "b's note")
            assert await a.session.call("com.example.api.my_notes") == ["a's note"]
            assert await b.session.call("com.example.api.my_notes") == ["b's note"]
        finally:
            await close_all(a, b)

    run(scenario())


def test_timeouts_cancel_the_query(bridge):
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            # The procedure's own timeout (300 ms) is the statement timeout.
            e = await error_of(s.call("com.example.quick_sleep", 5))
            assert e.error == "wamp.error.canceled" and e.kwargs["sqlstate"] == "57014", e
            # The caller's timeout: the dealer answers wamp.error.timeout (spec, "Call Timeouts")
            # and interrupts the bridge, which cancels the query.
            started = time.monotonic()
            e = await error_of(s.call("com.example.api.sleep", 30, options=CallOptions(timeout=500)))
            assert e.error == "wamp.error.timeout", e
            assert time.monotonic() - started < 5
            await eventually(
                lambda: psql(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' "
                    "AND state = 'active' AND pid <> pg_backend_pid()", bridge["database"]).strip() == "0",
                "the sleeping query is canceled", timeout=10)
            assert await s.call("com.example.api.add2", 20, 22) == 42
        finally:
            await close_all(c)

    run(scenario())


def test_events_are_published_from_sql_and_triggers(bridge):
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            notes, big = [], []
            await s.subscribe(lambda body, owner=None: notes.append((body, owner)), "com.example.note.on_insert")
            await s.subscribe(lambda text: big.append(len(text)), "com.example.big")
            await s.call("com.example.api.add_note", "published by a trigger")
            await eventually(lambda: ("published by a trigger", c.join_details.authid) in notes, "the trigger's event")
            # Sizes on both sides of NOTIFY's limit: the large ones go through the spill table.
            for size in (7000, 7990, 8000, 100_000):
                await s.call("com.example.api.shout", size)
            await eventually(lambda: len(big) == 4, "four events", timeout=10)
            assert big == [7000, 7990, 8000, 100_000], big
            # From psql: a rolled-back transaction publishes nothing; two equal events in one
            # transaction are two events.
            psql("BEGIN; SELECT wamp.publish('com.example.big', '[\"rolled back\"]'); ROLLBACK;", bridge["database"])
            psql("BEGIN; SELECT wamp.publish('com.example.big', '[\"twice\"]'); "
                 "SELECT wamp.publish('com.example.big', '[\"twice\"]'); COMMIT;", bridge["database"])
            await eventually(lambda: len(big) == 6, "the two equal events", timeout=10)
            await asyncio.sleep(0.3)
            assert big == [7000, 7990, 8000, 100_000, 5, 5], big
            assert psql("SELECT count(*) FROM wamp.event_buffer", bridge["database"]).strip() == "0"
        finally:
            await close_all(c)

    run(scenario())


def test_a_killed_listener_reconnects_and_says_so(bridge):
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            gaps, got = [], []
            await s.subscribe(lambda details: gaps.append(details), "switchboard.postgres.on_listener_reconnect")
            await s.subscribe(lambda text: got.append(text), "com.example.big")
            killed = psql(
                f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE application_name = 'sb-{bridge['tag']}-listener'", bridge["database"]).strip()
            assert killed == "1", killed
            await eventually(lambda: len(gaps) == 1, "the reconnect event", timeout=15)
            assert gaps[0]["bridge"] == "pg" and gaps[0]["gap_ms"] >= 0, gaps
            psql("SELECT wamp.publish('com.example.big', '[\"after\"]')", bridge["database"])
            await eventually(lambda: got == ["after"], "an event after the reconnect", timeout=10)
            # Calls never needed the listener.
            assert await s.call("com.example.api.add2", 1, 2) == 3
        finally:
            await close_all(c)

    run(scenario(), timeout=60)


def test_reload_registers_new_functions(bridge):
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            e = await error_of(s.call("com.example.api.triple", 3))
            assert e.error == "wamp.error.no_such_procedure", e
            psql(f"CREATE FUNCTION api.triple(x int) RETURNS int LANGUAGE sql AS $$ SELECT 3 * x $$; "
                 f"GRANT EXECUTE ON FUNCTION api.triple(int) TO {bridge['anon']}; NOTIFY switchboard, 'reload';",
                 bridge["database"])

            async def triple():
                try:
                    return await s.call("com.example.api.triple", 3)
                except ApplicationError:
                    return None

            deadline = time.monotonic() + 10
            while await triple() != 9:
                assert time.monotonic() < deadline, "the new function was not registered"
                await asyncio.sleep(0.1)
        finally:
            await close_all(c)

    run(scenario())


def test_events_reach_sql_functions_and_tables(bridge):
    from autobahn.wamp.types import PublishOptions

    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            await s.publish("com.example.chat.room1", "hello sql", options=PublishOptions(acknowledge=True))
            for i in range(250):
                s.publish("com.example.log", i, level="info")
            db = bridge["database"]
            await eventually(
                lambda: psql("SELECT count(*) FROM sink.chat_seen", db).strip() == "1", "the handler's row", timeout=10)
            seen = psql("SELECT topic, body, publisher_authid FROM sink.chat_seen", db).strip()
            assert seen == f"com.example.chat.room1|hello sql|{c.join_details.authid}", seen
            await eventually(
                lambda: psql("SELECT count(*) FROM wamp.inbox", db).strip() == "250", "250 inserted events", timeout=10)
            first = psql("SELECT topic, args, kwargs FROM wamp.inbox ORDER BY id LIMIT 1", db).strip()
            assert first == 'com.example.log|[0]|{"level": "info"}', first
            # Fewer INSERTs than events: they were batched.
            assert int(psql("SELECT count(DISTINCT received_at) FROM wamp.inbox", db)) < 250
        finally:
            await close_all(c)

    run(scenario())


def test_what_a_function_changes_for_its_session_does_not_reach_the_next_call(bridge):
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            await s.call("com.example.api.leak")
            default_path = psql("SHOW search_path", bridge["database"]).strip()
            for _ in range(8):
                assert await s.call("com.example.api.peek") == "|" + default_path
        finally:
            await close_all(c)

    run(scenario())


def test_calls_as_the_login_role_know_the_caller_and_leave_nothing_behind(bridge):
    """Without a role map a call is one prepared statement that sets the caller's identity
    before the function runs; what the function sets for its session is reset after it, and
    the component's max_timeout cancels a call that runs longer."""
    async def scenario():
        c = await client(bridge)
        try:
            s = c.session
            for _ in range(3):
                me = await s.call("com.example.plain.whoami")
                assert me == {"authid": c.join_details.authid, "authrole": "anonymous",
                              "session": c.join_details.session, "role": f"sb_{bridge['tag']}_login"}, me
            assert await s.call("com.example.plain.add2", 2, b=3) == 5
            assert await s.call("com.example.plain.greet", "o'brien \\", greeting="it's") == "it's, o'brien \\"
            assert await s.call("com.example.plain.echo_bytes", b"\x00\xff") == b"\x00\xff"
            assert await s.call("com.example.plain.series", 3) == [1, 2, 3]
            got = []
            await s.call("com.example.plain.series", 2, options=CallOptions(on_progress=got.append))
            assert got == [1, 2], got
            raw = await s.call("com.example.plain.raw", 1, k=2)
            assert (list(raw.results), raw.kwresults) == ([1, "from sql"], {"k": 2}), raw
            e = await error_of(s.call("com.example.plain.fail"))
            assert e.error == "com.example.error.custom", e
            e = await error_of(s.call("com.example.plain.add2", "x", 1))
            assert e.error == "wamp.error.invalid_argument" and e.kwargs["sqlstate"] == "22P02", e
            await s.call("com.example.plain.leak")
            default_path = psql("SHOW search_path", bridge["database"]).strip()
            for _ in range(8):
                assert await s.call("com.example.plain.peek") == "|" + default_path
            # A role a function took for its session (RESET ALL leaves the role alone) is gone too.
            await s.call("com.example.plain.become_anon")
            for _ in range(8):
                me = await s.call("com.example.plain.whoami")
                assert me["role"] == f"sb_{bridge['tag']}_login", me
            # A read-only procedure's transaction is read-only, and the next call's is not.
            for _ in range(4):
                e = await error_of(s.call("com.example.plain.claim_read_only", uuid.uuid4().hex))
                assert e.error == "switchboard.error.sql" and e.kwargs["sqlstate"] == "25006", e
                await s.call("com.example.plain.claim", uuid.uuid4().hex)
            e = await error_of(s.call("com.example.plain.sleep", 5))
            assert e.error == "wamp.error.canceled" and e.kwargs["sqlstate"] == "57014", e
            # Outside a call the settings are empty again on every pooled connection.
            for _ in range(8):
                me = await s.call("com.example.plain.whoami")
                assert me["authid"] == c.join_details.authid, me
        finally:
            await close_all(c)

    run(scenario())


def test_two_nodes_on_one_database_publish_each_event_once_and_take_over(bridge):
    """Two more nodes with the bridge, publishing a channel of their own: only one of them
    publishes it (the advisory lock); when that node goes away, the other takes over."""
    import copy

    channel = "wamp_publish_two"
    db = bridge["database"]

    def publish(text):
        psql(f"SELECT set_config('wamp.publish_channel', '{channel}', false); "
             f"SELECT wamp.publish('com.example.big', '[\"{text}\"]')", db)

    def start_node(name):
        config = copy.deepcopy(bridge["config"])
        port = free_tcp_port()
        worker = config["workers"][0]
        # The first component only.
        worker["components"], worker["connections"] = worker["components"][:1], worker["connections"][:1]
        worker["transports"][0]["endpoint"]["port"] = port
        worker["connections"][0]["options"]["application_name"] = f"sb-{bridge['tag']}-{name}"
        component = worker["components"][0]
        component["publisher"]["channel"] = channel
        component.pop("subscriber")
        node = launch_router(make_node_dir("switchboard"), config, [port])
        if name == "first":
            wait_for_log(node, "publishing events")
        return node

    async def subscriber(node):
        return await subscribed(node, "com.example.big")

    first = start_node("first")
    second = start_node("second")
    try:
        async def once():
            a, on_first = await subscriber(first)
            b, on_second = await subscriber(second)
            try:
                publish("once")
                await eventually(lambda: on_first or on_second, "the event on one of the nodes", timeout=10)
                await asyncio.sleep(0.5)
                # The first node holds the channel's lock: the event is published there only.
                assert (on_first, on_second) == (["once"], []), (on_first, on_second)
            finally:
                await close_all(a, b)

        run(once())
        first.close()

        async def takeover():
            b, got = await subscriber(second)
            try:
                deadline = time.monotonic() + 20
                while not got:
                    assert time.monotonic() < deadline, second.log_tail()
                    publish("again")
                    await asyncio.sleep(1)
                assert set(got) == {"again"}, got
            finally:
                await close_all(b)

        run(takeover(), timeout=60)
    finally:
        first.close()
        second.close()


def test_the_outbox_loses_no_event_when_the_publishing_bridge_dies_or_its_listener_is_killed(bridge):
    """The outbox tier: events written while the publishing bridge cannot publish (frozen, then
    killed) wait in wamp.outbox and are published by the bridge that takes over, in order; so
    are events written while its listener connection is away."""
    import copy
    import signal

    channel = "wamp_outbox_two"
    db = bridge["database"]

    def publish(texts, how="setting"):
        # The tier comes from the setting wamp.publish_mode (as ALTER DATABASE ... SET would
        # give every session), or wamp.publish_outbox chooses it.
        calls = "".join(
            f"SELECT wamp.publish('com.example.big', '[\"{t}\"]');" if how == "setting"
            else f"SELECT wamp.publish_outbox('com.example.big', '[\"{t}\"]');"
            for t in texts)
        psql(f"SET wamp.publish_channel = '{channel}'; SET wamp.publish_mode = 'outbox'; BEGIN; {calls} COMMIT;"
             if how == "setting" else f"SET wamp.publish_channel = '{channel}'; {calls}", db)

    def waiting():
        return int(psql(f"SELECT count(*) FROM wamp.outbox WHERE channel = '{channel}'", db))

    def start_node(name):
        config = copy.deepcopy(bridge["config"])
        port = free_tcp_port()
        worker = config["workers"][0]
        # The first component only.
        worker["components"], worker["connections"] = worker["components"][:1], worker["connections"][:1]
        worker["transports"][0]["endpoint"]["port"] = port
        worker["connections"][0]["options"]["application_name"] = f"sb-{bridge['tag']}-{name}"
        component = worker["components"][0]
        component["publisher"] = {"mode": "outbox", "channel": channel}
        component.pop("subscriber")
        node = launch_router(make_node_dir("switchboard"), config, [port])
        wait_for_log(node, "registered com.example")
        return node

    async def subscriber(node):
        return await subscribed(node, "com.example.big")

    first = start_node("first")
    assert "publishing events" in first.log_path.read_text(errors="replace"), first.log_tail()
    second = start_node("second")
    try:
        async def scenario():
            a, on_first = await subscriber(first)
            b, on_second = await subscriber(second)
            try:
                publish([f"a{i}" for i in range(20)])
                publish(["a20"], how="function")
                await eventually(lambda: len(on_first) == 21, "21 events on the first node", timeout=10)
                assert on_first == [f"a{i}" for i in range(21)] and on_second == [], (on_first, on_second)
                assert waiting() == 0
                # The publishing node freezes: events wait in the outbox...
                first.proc.send_signal(signal.SIGSTOP)
                publish([f"b{i}" for i in range(30)])
                await asyncio.sleep(1)
                assert waiting() == 30 and on_second == []
                # ...and when it dies, the other node takes the channel over and publishes them.
                first.proc.send_signal(signal.SIGKILL)
                await eventually(lambda: len(on_second) >= 30, "the waiting events on the second node", timeout=20)
                assert on_second == [f"b{i}" for i in range(30)], on_second
                assert waiting() == 0
                # Events written while the listener connection is away are published after it is back.
                killed = psql(
                    f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    f"WHERE application_name = 'sb-{bridge['tag']}-second-listener'", db).strip()
                assert killed == "1", killed
                publish([f"c{i}" for i in range(10)])
                await eventually(lambda: len(on_second) >= 40, "the events of the outage", timeout=20)
                assert on_second[30:] == [f"c{i}" for i in range(10)], on_second
                assert waiting() == 0
            finally:
                await close_all(a, b)

        run(scenario(), timeout=90)
    finally:
        first.kill()
        first.close()
        second.close()


def test_crossbars_postgresql_publisher_config_runs_as_crossbar_ran_it(bridge):
    """Crossbar's 2016 config form (a `crossbar.adapter.postgres.PostgreSQLPublisher` class
    component with `extra.database`): the bridge installs crossbar.publish into the schema
    `crossbar` owned by its login role, as Crossbar did, and SQL publishes with it as in
    Crossbar's example; two equal events in one transaction stay two."""
    db, s = bridge["database"], server()
    login = f"sb_{bridge['tag']}_login"
    psql(f"CREATE SCHEMA IF NOT EXISTS crossbar AUTHORIZATION {login}", db)
    port = free_tcp_port()
    config = {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
                {"uri": "", "match": "prefix",
                 "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
                 "disclose": {"caller": False, "publisher": False}, "cache": True}]}]}],
            "transports": [{"type": "web", "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                            "paths": {"ws": {"type": "websocket"}}}],
            "components": [{
                "type": "class", "classname": "crossbar.adapter.postgres.PostgreSQLPublisher",
                "realm": "realm1", "role": "anonymous",
                "extra": {"database": {"host": s["host"], "port": s["port"], "database": db,
                                       "user": login, "password": "unused"}},
            }],
        }],
    }
    node = launch_router(make_node_dir("switchboard"), config, [port])
    try:
        wait_for_log(node, "publishing events")
        assert "crossbar.publish installed" in node.log_path.read_text(errors="replace")

        async def scenario():
            c = await connect_with({"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws",
                                    "serializers": ["json"]}, "websocket", "json")
            try:
                got = []
                await c.session.subscribe(lambda *args, **kwargs: got.append((list(args), kwargs)), "com.example.topic1")
                call = ("SELECT crossbar.publish('com.example.topic1', json_build_array(23, 7, 'hello world!')::jsonb, "
                        "json_build_object('foo', 'bar', 'baz', 42)::jsonb);")
                psql(f"BEGIN; {call} {call} COMMIT;", db)
                await eventually(lambda: len(got) == 2, "two events", timeout=10)
                assert got == [([23, 7, "hello world!"], {"foo": "bar", "baz": 42})] * 2, got
                refused = subprocess.run(
                    ["psql", "-h", s["host"], "-p", str(s["port"]), "-U", s["user"], "-d", db, "-Atq", "-c",
                     "SELECT crossbar.publish('wamp.session.on_join', '[]')"], capture_output=True, text=True)
                assert refused.returncode != 0 and "invalid topic" in refused.stderr, refused.stderr
            finally:
                await close_all(c)

        run(scenario())
    finally:
        node.close()


class TcpProxy:
    """A TCP proxy to the database that the test can cut (closing every connection and refusing
    new ones) and restore on the same port: the database going away and coming back."""

    def __init__(self, target_host: str, target_port: int):
        import socket
        import threading

        self._socket, self._threading = socket, threading
        self.target = (target_host, target_port)
        self.port = free_tcp_port()
        self.conns = []
        self.listener = None
        self.start()

    def start(self):
        s = self._socket.socket()
        s.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        self._threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        # shutdown first: a thread blocked in accept() keeps a merely closed listener accepting.
        try:
            self.listener.shutdown(self._socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for c in self.conns:
            try:
                c.shutdown(self._socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []


def test_calls_fail_fast_while_the_database_is_away_and_work_again_after(bridge):
    import copy

    s = server()
    proxy = TcpProxy(s["host"], s["port"])
    config = copy.deepcopy(bridge["config"])
    port = free_tcp_port()
    worker = config["workers"][0]
    worker["components"], worker["connections"] = worker["components"][:1], worker["connections"][:1]
    worker["transports"][0]["endpoint"]["port"] = port
    worker["connections"][0].update({"host": "127.0.0.1", "port": proxy.port})
    worker["connections"][0]["options"]["application_name"] = f"sb-{bridge['tag']}-proxied"
    component = worker["components"][0]
    component.pop("subscriber")
    component.pop("publisher")
    node = launch_router(make_node_dir("switchboard"), config, [port])
    try:
        wait_for_log(node, "registered com.example")

        async def scenario():
            c = await connect_with({"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws",
                                    "serializers": ["json"]}, "websocket", "json")
            try:
                assert await c.session.call("com.example.api.add2", 1, 2) == 3
                proxy.cut()
                started = time.monotonic()
                e = await error_of(c.session.call("com.example.api.add2", 1, 2))
                assert e.error == "wamp.error.unavailable", e
                assert time.monotonic() - started < 8, "fails fast, without waiting for the database"
                proxy.start()
                deadline = time.monotonic() + 30
                while True:
                    try:
                        assert await c.session.call("com.example.api.add2", 2, 2) == 4
                        break
                    except ApplicationError as err:
                        assert err.error == "wamp.error.unavailable", err
                        assert time.monotonic() < deadline, node.log_tail()
                        await asyncio.sleep(0.5)
            finally:
                await close_all(c)

        run(scenario(), timeout=90)
    finally:
        node.close()
        proxy.cut()


def test_a_reload_starts_changes_and_stops_a_bridge_by_its_id_and_leaves_the_others_running(bridge):
    """A bridge added to the config starts at the next reload, one whose config or connection
    changed restarts with it, a removed one leaves (its procedures go), and a bridge that did not
    change keeps running with the registrations it has."""
    s = server()
    port = free_tcp_port()
    login = f"sb_{bridge['tag']}_login"
    connection = {"id": "db", "type": "postgres", "host": s["host"], "port": s["port"],
                  "database": bridge["database"], "user": login, "options": {"max_connections": 2}}

    def pg(id_: str, prefix: str) -> dict:
        return {"type": "postgresql", "id": id_, "realm": "realm1", "role": "db_bridge", "connection": "db",
                "callee": {"procedures": [{"uri": f"{prefix}add2", "function": "api.add2"}]}}

    def config(*components, app_name: str = "first") -> dict:
        conn = dict(connection, options=dict(connection["options"], application_name=f"sb-{bridge['tag']}-{app_name}"))
        return {"version": 2, "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": True}}]},
                {"name": "db_bridge", "permissions": [
                    {"uri": "com.example.", "match": "prefix", "allow": {"register": True}}]}]}],
            "transports": [{"type": "web", "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                            "paths": {"ws": {"type": "websocket"}}}],
            "connections": [conn],
            "components": list(components),
        }]}

    nd = make_node_dir("switchboard")
    router = launch_router(nd, config(pg("a", "com.example.a.")), [port])

    def reload_with(*components, app_name: str = "first") -> str:
        nd.write_config(config(*components, app_name=app_name))
        result = run_router_command(nd, "reload", timeout=60)
        assert result.returncode == 0, result.describe()
        return result.output

    async def answers(s, procedure) -> bool:
        try:
            return await s.call(procedure, 2, 3) == 5
        except ApplicationError:
            return False

    async def gone(s, procedure) -> bool:
        return await s.call("wamp.registration.lookup", procedure) is None

    try:
        async def scenario():
            c = await connect_with(ws(router), "websocket", "json")
            try:
                await eventually(lambda: answers(c.session, "com.example.a.add2"), "bridge a", timeout=20)
                a_registration = await c.session.call("wamp.registration.lookup", "com.example.a.add2")

                output = reload_with(pg("a", "com.example.a."), pg("b", "com.example.b."))
                assert 'applied: PostgreSQL bridge "b" added: started' in output and '"a"' not in output, output
                await eventually(lambda: answers(c.session, "com.example.b.add2"), "bridge b", timeout=20)
                assert await c.session.call("wamp.registration.lookup", "com.example.a.add2") == a_registration

                output = reload_with(pg("a", "com.example.a."), pg("b", "com.example.c."))
                assert 'applied: PostgreSQL bridge "b" restarted with its new config' in output, output
                await eventually(lambda: answers(c.session, "com.example.c.add2"), "bridge b changed", timeout=20)
                await eventually(lambda: gone(c.session, "com.example.b.add2"), "b's old procedure gone", timeout=20)

                # The connection both use changed: both restart.
                output = reload_with(pg("a", "com.example.a."), pg("b", "com.example.c."), app_name="second")
                assert 'PostgreSQL bridge "a" restarted' in output and 'PostgreSQL bridge "b" restarted' in output, output
                await eventually(lambda: answers(c.session, "com.example.a.add2"), "bridge a again", timeout=20)

                output = reload_with(pg("a", "com.example.a."), app_name="second")
                assert 'applied: PostgreSQL bridge "b" removed: stopped' in output, output
                await eventually(lambda: gone(c.session, "com.example.c.add2"), "bridge b gone", timeout=20)
                assert await answers(c.session, "com.example.a.add2")
                assert not c.left.done()
            finally:
                await close_all(c)

        run(scenario())
    finally:
        router.close()

