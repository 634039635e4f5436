"""The PostgreSQL bridge's durable publish tier, on a throwaway cluster with wal_level=logical
(pg_cluster.py): events written as logical messages reach Autobahn|Python subscribers in commit
order, of any size, none from a rolled-back transaction; events written while the publishing
node is frozen and then killed are published by the node that takes the slot over; events
written while the replication connection is away are published when it is back.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import uuid

import pytest

import pg_cluster
from interop_client import close_all, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir, switchboard_bin
from test_postgres import psql, subscribed, wait_for_log

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("runs Switchboard's node only", allow_module_level=True)


@pytest.fixture(scope="module")
def durable():
    try:
        # Keepalives every second (wal_sender_timeout / 2), for the slot-advance check.
        cluster = pg_cluster.Cluster({"wal_level": "logical", "max_replication_slots": 8,
                                      "max_wal_senders": 8, "wal_sender_timeout": "'2s'"}).start()
    except RuntimeError as e:
        pytest.fail(f"the durable tier's tests need a PostgreSQL cluster of their own with "
                    f"wal_level=logical, which could not be started: {e}")
    at = {"host": "127.0.0.1", "port": cluster.port, "user": "postgres"}
    tag = uuid.uuid4().hex[:8]
    database, login = f"sbdurable_{tag}", f"sbdurable_{tag}"
    try:
        psql(f"CREATE DATABASE {database}", at=at)
        # The slot is read over a replication connection: the login role needs REPLICATION.
        psql(f"CREATE ROLE {login} LOGIN REPLICATION", at=at)
        import subprocess
        helper = subprocess.run([str(switchboard_bin()), "postgres", "sql"], capture_output=True, text=True, check=True)
        psql(helper.stdout, database, at=at)
        config = {
            "version": 2,
            "workers": [{
                "type": "router",
                "realms": [{"name": "realm1", "roles": [
                    {"name": "anonymous", "permissions": [
                        {"uri": "", "match": "prefix", "allow": {"call": True, "subscribe": True}}]},
                    {"name": "db_bridge", "permissions": [
                        {"uri": "com.example.", "match": "prefix", "allow": {"publish": True}}]},
                ]}],
                "transports": [{
                    "type": "web",
                    "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
                    "paths": {"ws": {"type": "websocket"}},
                }],
                "connections": [{
                    "id": "db", "type": "postgres", "host": "127.0.0.1", "port": cluster.port,
                    "database": database, "user": login, "options": {"application_name": f"sbd-{tag}"},
                }],
                "components": [{
                    "type": "postgresql", "id": "pg", "realm": "realm1", "role": "db_bridge",
                    "connection": "db", "publisher": {"mode": "durable"},
                }],
            }],
        }
        yield {"at": at, "database": database, "tag": tag, "config": config}
    finally:
        cluster.stop()


def start_node(durable, name, wait_for_stream):
    config = copy.deepcopy(durable["config"])
    port = free_tcp_port()
    worker = config["workers"][0]
    worker["transports"][0]["endpoint"]["port"] = port
    worker["connections"][0]["options"]["application_name"] = f"sbd-{durable['tag']}-{name}"
    node = launch_router(make_node_dir("switchboard"), config, [port])
    if wait_for_stream:
        wait_for_log(node, "streaming the durable tier")
    return node


async def subscriber(node):
    return await subscribed(node, "com.example.tick")


def test_durable_events_survive_the_publishing_node_and_its_replication_connection(durable):
    at, db = durable["at"], durable["database"]

    def publish(texts, how="setting"):
        calls = "".join(f"SELECT wamp.publish('com.example.tick', '[\"{t}\"]');" for t in texts)
        if how == "setting":
            psql(f"SET wamp.publish_mode = 'durable'; BEGIN; {calls} COMMIT;", db, at=at)
        else:
            psql(calls.replace("wamp.publish(", "wamp.publish_durable("), db, at=at)

    first = start_node(durable, "first", wait_for_stream=True)
    second = start_node(durable, "second", wait_for_stream=False)
    try:
        async def scenario():
            a, on_first = await subscriber(first)
            b, on_second = await subscriber(second)
            try:
                publish([f"a{i}" for i in range(20)])
                publish(["a20"], how="function")
                # Any size: no NOTIFY limit, no table.
                psql("SELECT wamp.publish_durable('com.example.tick', jsonb_build_array(repeat('x', 100000)))", db, at=at)
                # A rolled-back transaction publishes nothing.
                psql("BEGIN; SELECT wamp.publish_durable('com.example.tick', '[\"rolled back\"]'); ROLLBACK;", db, at=at)
                publish(["a21"], how="function")
                await eventually(lambda: len(on_first) == 23, "23 events on the first node", timeout=15)
                assert on_first[:21] == [f"a{i}" for i in range(21)], on_first[:21]
                assert on_first[21] == "x" * 100_000 and on_first[22] == "a21"
                assert on_second == []
                # The first node reports what it published to the server (once a second).
                await asyncio.sleep(2)
                # The publishing node freezes: the events wait in the slot...
                first.proc.send_signal(signal.SIGSTOP)
                publish([f"b{i}" for i in range(30)])
                await asyncio.sleep(1)
                assert on_second == []
                # ...and when it dies, the other node takes the slot over and publishes them.
                first.proc.send_signal(signal.SIGKILL)
                await eventually(lambda: [x for x in on_second if x.startswith("b")] == [f"b{i}" for i in range(30)],
                                 "the waiting events on the second node", timeout=30)
                # Events written while the replication connection is away are published after.
                killed = psql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    f"WHERE application_name = 'sbd-{durable['tag']}-second-replication'", db, at=at).strip()
                assert killed == "1", killed
                publish([f"c{i}" for i in range(10)])
                await eventually(lambda: [x for x in on_second if x.startswith("c")] == [f"c{i}" for i in range(10)],
                                 "the events of the outage", timeout=30)
                # Transactions without events (pgoutput does not send them) do not hold the
                # slot's WAL: the bridge confirms what keepalives say was sent.
                psql("CREATE TABLE noise (x int); INSERT INTO noise VALUES (1);", db, at=at)
                lsn = psql("SELECT pg_current_wal_lsn()", db, at=at).strip()
                await eventually(lambda: psql(
                    f"SELECT confirmed_flush_lsn >= '{lsn}'::pg_lsn FROM pg_replication_slots "
                    "WHERE slot_name = 'switchboard'", db, at=at).strip() == "t",
                    "the slot confirmed past the event-less transaction", timeout=20)
                # Nothing but duplicates of what was published before the kill came twice.
                assert all(x in (f"a{i}" for i in range(22)) or x.startswith(("b", "c")) or x == "x" * 100_000
                           for x in on_second), on_second
            finally:
                await close_all(a, b)

        run(scenario(), timeout=120)
    finally:
        first.kill()
        first.close()
        second.close()
