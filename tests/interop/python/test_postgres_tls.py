"""The PostgreSQL bridge over TLS, against a throwaway cluster (pg_cluster.py) that takes TCP
connections with TLS only, with a certificate of a CA of its own: with `verify-full` and that
CA as `sslrootcert`, calls run over TLS and outbox events arrive over TLS; with another CA the
bridge does not connect (and says why); without TLS the server refuses it.
"""

from __future__ import annotations

import copy
import os
import subprocess
import tempfile
import uuid

import pytest

import pg_cluster
from interop_client import close_all, connect_with, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir, switchboard_bin
from test_postgres import psql, wait_for_log

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("runs Switchboard's node only", allow_module_level=True)


@pytest.fixture(scope="module")
def tls_db():
    try:
        cluster = pg_cluster.Cluster(tls_only=True).start()
    except RuntimeError as e:
        pytest.fail(f"the TLS tests need a PostgreSQL cluster of their own, which could not be started: {e}")
    at = {"host": "127.0.0.1", "port": cluster.port, "user": "postgres"}
    tag = uuid.uuid4().hex[:8]
    database, login = f"sbtls_{tag}", f"sbtls_{tag}"
    other_ca_dir = tempfile.mkdtemp(prefix="sb-other-ca-")
    try:
        psql(f"CREATE DATABASE {database}", at=at)
        psql(f"CREATE ROLE {login} LOGIN", at=at)
        helper = subprocess.run([str(switchboard_bin()), "postgres", "sql"], capture_output=True, text=True, check=True)
        psql(helper.stdout, database, at=at)
        psql(f"""CREATE SCHEMA api; GRANT USAGE ON SCHEMA api TO {login};
                 CREATE FUNCTION api.encrypted() RETURNS jsonb LANGUAGE sql AS
                   $$ SELECT jsonb_build_object('ssl', ssl, 'version', version) FROM pg_stat_ssl
                      WHERE pid = pg_backend_pid() $$;
                 GRANT EXECUTE ON FUNCTION api.encrypted() TO {login};
                 GRANT SELECT, DELETE ON wamp.outbox TO {login};""", database, at=at)
        config = {
            "version": 2,
            "workers": [{
                "type": "router",
                "realms": [{"name": "realm1", "roles": [
                    {"name": "anonymous", "permissions": [
                        {"uri": "", "match": "prefix", "allow": {"call": True, "subscribe": True}}]},
                    {"name": "db_bridge", "permissions": [
                        {"uri": "com.example.", "match": "prefix", "allow": {"register": True, "publish": True}}]},
                ]}],
                "transports": [{
                    "type": "web",
                    "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
                    "paths": {"ws": {"type": "websocket"}},
                }],
                "connections": [{
                    "id": "db", "type": "postgres", "host": "127.0.0.1", "port": cluster.port,
                    "database": database, "user": login,
                    "options": {"sslmode": "verify-full", "sslrootcert": cluster.tls["ca"],
                                "application_name": f"sbtls-{tag}"},
                }],
                "components": [{
                    "type": "postgresql", "id": "pg", "realm": "realm1", "role": "db_bridge",
                    "connection": "db",
                    "callee": {"schemas": [{"schema": "api", "prefix": "com.example.api."}]},
                    "publisher": {"mode": "outbox"},
                }],
            }],
        }
        other_ca = pg_cluster.make_ca_and_server_cert(other_ca_dir, name="another")["ca"]
        yield {"at": at, "database": database, "config": config, "other_ca": other_ca,
               "socket_dir": cluster.datadir}
    finally:
        cluster.stop()


def start(config, wait_for):
    port = free_tcp_port()
    config = copy.deepcopy(config)
    config["workers"][0]["transports"][0]["endpoint"]["port"] = port
    node = launch_router(make_node_dir("switchboard"), config, [port])
    wait_for_log(node, *wait_for)
    return node


def test_verify_full_calls_and_publishes_over_tls(tls_db):
    node = start(tls_db["config"], ["registered com.example.api.encrypted", "publishing events"])
    try:
        async def scenario():
            c = await connect_with({"type": "websocket", "url": f"ws://127.0.0.1:{node.port}/ws",
                                    "serializers": ["json"]}, "websocket", "json")
            try:
                got = []
                await c.session.subscribe(got.append, "com.example.tick")
                for _ in range(3):
                    answer = await c.session.call("com.example.api.encrypted")
                    assert answer["ssl"] is True and answer["version"].startswith("TLSv1."), answer
                psql("SELECT wamp.publish_outbox('com.example.tick', '[\"over tls\"]')", tls_db["database"],
                     at=tls_db["at"])
                await eventually(lambda: got == ["over tls"], "the outbox event", timeout=15)
            finally:
                await close_all(c)

        run(scenario())
    finally:
        node.close()


def test_a_certificate_of_another_ca_or_no_tls_keeps_the_bridge_out(tls_db):
    wrong_ca = copy.deepcopy(tls_db["config"])
    wrong_ca["workers"][0]["connections"][0]["options"]["sslrootcert"] = tls_db["other_ca"]
    node = start(wrong_ca, ["cannot connect to the database"])
    try:
        log = node.log_path.read_text(errors="replace")
        assert "certificate" in log.lower(), node.log_tail()
        assert "registered com.example" not in log
    finally:
        node.close()
    plain = copy.deepcopy(tls_db["config"])
    plain["workers"][0]["connections"][0]["options"] = {"sslmode": "disable"}
    node = start(plain, ["cannot connect to the database"])
    try:
        assert "no encryption" in node.log_path.read_text(errors="replace"), node.log_tail()
    finally:
        node.close()


def test_a_unix_socket_needs_no_tls_whatever_the_sslmode(tls_db):
    """As with libpq: sslmode does not apply to a Unix socket (the cluster takes local
    connections without TLS)."""
    local = copy.deepcopy(tls_db["config"])
    connection = local["workers"][0]["connections"][0]
    connection["host"] = tls_db["socket_dir"]
    connection["options"] = {"sslmode": "require"}
    node = start(local, ["registered com.example.api.encrypted"])
    try:
        async def scenario():
            c = await connect_with({"type": "websocket", "url": f"ws://127.0.0.1:{node.port}/ws",
                                    "serializers": ["json"]}, "websocket", "json")
            try:
                answer = await c.session.call("com.example.api.encrypted")
                assert answer["ssl"] is False, answer
            finally:
                await close_all(c)

        run(scenario())
    finally:
        node.close()
