"""The backend of {{ appname }}: a WAMP component that the Switchboard node hosts.

The node runs it as the component of its router worker (.crossbar/config.json: "components"), in
its own Python process, joined to realm1 with the role "backend"; it is restarted when it fails,
and what it logs appears in the node's log. The page in web/index.html calls it from JavaScript.

It registers com.example.add2, subscribes to com.example.onhello and publishes an increasing
integer to com.example.oncounter every second.
"""

import asyncio

from autobahn.asyncio.wamp import ApplicationSession


class AppSession(ApplicationSession):
    async def onJoin(self, details):
        def onhello(message):
            self.log.info("event for com.example.onhello: {message}", message=message)

        await self.subscribe(onhello, "com.example.onhello")

        # Registered last: a page that got an answer from add2 knows the backend listens too.
        def add2(x, y):
            return x + y

        await self.register(add2, "com.example.add2")
        self.log.info(
            "{{ appname }} backend joined {realm} as session {session}: "
            "subscribed to com.example.onhello, registered com.example.add2",
            realm=details.realm,
            session=details.session,
        )

        counter = 0
        while True:
            self.publish("com.example.oncounter", counter)
            counter += 1
            await asyncio.sleep(1)
