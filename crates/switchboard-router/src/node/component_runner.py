"""Runs one application component of a Switchboard node: a Python class deriving from Autobahn's
ApplicationSession (asyncio or Twisted), as Crossbar hosts `"type": "class"` components.

The node starts this script in a supervised process, one per component, with the component in
the environment variable SWITCHBOARD_COMPONENT (JSON: classname, realm, extra, pythonpath and the
transport; for a router worker's component the node's private socket, authid and ticket; for a
container worker's component the transport it configures, and no credentials). The process ends when the session
ends, and exits non-zero when it fails (the class cannot be imported, onJoin raises, the session
leaves or the connection is lost): the node restarts it like a guest worker. Tracebacks go to
stderr, which the node logs under the component's id.
"""

import importlib
import json
import os
import sys
import traceback


def fail(message):
    print(message, file=sys.stderr, flush=True)
    os._exit(1)


def main():
    spec = json.loads(os.environ["SWITCHBOARD_COMPONENT"])
    for path in reversed(spec["pythonpath"]):
        sys.path.insert(0, path)
    module_name, _, class_name = spec["classname"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except Exception:
        fail(f"cannot import {spec['classname']}:\n{traceback.format_exc()}")

    # Which of Autobahn's two flavours the class derives from, read off its bases: importing the
    # other flavour now would fail (txaio allows one framework per process).
    twisted = isinstance(cls, type) and any(
        base.__module__.startswith("autobahn.twisted") for base in cls.__mro__
    )
    if twisted:
        from autobahn.twisted.component import Component, run
    else:
        from autobahn.asyncio.component import Component, run
    import txaio

    class Hosted(cls):
        """The component's class, joining with the node's ticket where the node gave one (a
        router worker's component), and failing the process when its session fails."""

        def onConnect(self):
            if spec.get("authid"):
                self.join(self.config.realm, authmethods=["ticket"], authid=spec["authid"])
            else:
                super().onConnect()

        def onChallenge(self, challenge):
            if spec.get("authid") and challenge.method == "ticket":
                return spec["ticket"]
            return super().onChallenge(challenge)

        def onJoin(self, details):
            result = txaio.as_future(super().onJoin, details)

            def joined_failed(failure):
                fail(f"{spec['classname']}.onJoin raised:\n{txaio.failure_format_traceback(failure)}")

            txaio.add_callbacks(result, None, joined_failed)
            return result

        def onLeave(self, details):
            try:
                super().onLeave(details)
            finally:
                fail(f"{spec['classname']} left the realm: {details.reason} {details.message or ''}".rstrip())

        def onDisconnect(self):
            try:
                super().onDisconnect()
            finally:
                fail(f"{spec['classname']}: connection to the router lost")

    transport = dict(spec["transport"], max_retries=0)
    tls = transport.get("endpoint", {}).get("tls")
    if isinstance(tls, dict):
        if twisted:
            fail("TLS in a container component's transport is supported for asyncio components only")
        import ssl

        context = ssl.create_default_context()
        for ca in tls.get("ca_certificates", []):
            context.load_verify_locations(ca)
        if tls.get("certificate"):
            context.load_cert_chain(tls["certificate"], tls.get("key"))
        if tls.get("hostname") is None:
            context.check_hostname = False
        transport["endpoint"] = dict(transport["endpoint"], tls=context)
    component = Component(
        transports=[transport],
        realm=spec["realm"],
        extra=spec.get("extra"),
        session_factory=Hosted,
    )
    print(
        f"running {spec['classname']} ({'Twisted' if twisted else 'asyncio'}) on realm {spec['realm']}",
        flush=True,
    )
    # "info": a Twisted component's print() goes through its log (Twisted redirects stdout), and
    # must reach the node's log.
    run([component], log_level="info")
    fail(f"{spec['classname']}: the component stopped")


if __name__ == "__main__":
    main()
