"""Runs one `function` authenticator of a Switchboard node, as Crossbar's `"type": "function"`:
imports `create` (``module.function``) from the pythonpath, awaits ``create(config, None)`` for
the ``authenticate(realm, authid, details)`` function, then answers the node's calls of it.

The node starts this script with the authenticator in the environment variable
SWITCHBOARD_FUNCTION (JSON: create, config, pythonpath) and talks to it over stdin and stdout,
one JSON object per line: ``{"id", "args"}`` in, ``{"id", "result"}`` or ``{"id", "error",
"args"}`` out. Whatever the function prints goes to stderr, which the node logs, so that it cannot
garble the answers. An exception with an ``error`` URI (Autobahn's ApplicationError) is passed on
as that error; any other is logged with its traceback and refuses the session. Both functions may
be coroutines. The script ends when stdin closes (the node stopped) and exits non-zero when the
module does not import or ``create`` fails: the node starts it again after a pause.
"""

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback


def fail(message):
    print(message, file=sys.stderr, flush=True)
    os._exit(1)


async def settle(value):
    """The value, awaited for as long as it is awaitable (a coroutine, a future)."""
    while inspect.isawaitable(value):
        value = await value
    return value


async def serve(spec, answers):
    module_name, _, function_name = spec["create"].rpartition(".")
    try:
        create = getattr(importlib.import_module(module_name), function_name)
    except Exception:
        fail(f"cannot import {spec['create']}:\n{traceback.format_exc()}")
    try:
        authenticate = await settle(create(spec["config"], None))
    except Exception:
        fail(f"{spec['create']} raised:\n{traceback.format_exc()}")
    if not callable(authenticate):
        fail(f"{spec['create']} returned {authenticate!r}, not an authenticate function")
    print(f"function authenticator {spec['create']} ready", file=sys.stderr, flush=True)

    def reply(message):
        answers.write(json.dumps(message, default=str) + "\n")
        answers.flush()

    async def answer(request):
        try:
            result = await settle(authenticate(*request["args"]))
            reply({"id": request["id"], "result": result})
        except Exception as e:
            error = getattr(e, "error", None)
            if isinstance(error, str):
                reply({"id": request["id"], "error": error, "args": [str(a) for a in e.args]})
            else:
                print(f"{spec['create']}: authenticate raised:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                reply({
                    "id": request["id"],
                    "error": "wamp.error.authentication_failed",
                    "args": [f"the authenticator failed: {type(e).__name__}"],
                })

    loop = asyncio.get_running_loop()
    # A call carries a HELLO's details, up to a WAMP message's size (1 MiB by default): well below
    # this limit on one line (asyncio's default is 64 KiB).
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    calls = set()
    while line := await reader.readline():
        call = asyncio.ensure_future(answer(json.loads(line)))
        calls.add(call)
        call.add_done_callback(calls.discard)


def main():
    spec = json.loads(os.environ["SWITCHBOARD_FUNCTION"])
    # The answers keep the real stdout; print() and anything else writing to fd 1 get stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for path in reversed(spec["pythonpath"]):
        sys.path.insert(0, path)
    asyncio.run(serve(spec, answers))


if __name__ == "__main__":
    main()
