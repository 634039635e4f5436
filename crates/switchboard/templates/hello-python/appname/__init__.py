"""{{ appname }}: a WAMP application hosted by a Switchboard node (see ../README.md)."""
