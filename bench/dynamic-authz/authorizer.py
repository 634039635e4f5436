import asyncio, sys
from autobahn.asyncio.component import Component, run
calls = 0
comp = Component(transports=[{"type": "rawsocket", "url": "rs://127.0.0.1:18080", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 18080}, "serializer": "json"}], realm="realm1")
@comp.register("bench.authorize")
def authorize(session, uri, action, options):
    global calls
    calls += 1
    print(f"authorize {action} {uri} ({calls})", flush=True)
    return {"allow": True, "cache": True}
run([comp], log_level="warn")
