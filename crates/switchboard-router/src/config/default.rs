//! The built-in configuration: what `switchboard start` runs without a node directory, and what
//! `switchboard init` writes.

/// The built-in configuration `switchboard start` runs without a node directory, and the one
/// `switchboard init` writes: a universal listener on 127.0.0.1:8080 (WebSocket at `/ws`, RawSocket
/// on the same port), realm `realm1`, the `anonymous` role allowed everything. Both endpoints ping
/// their peers every 30 s and close a connection whose peer does not answer within 10 s, so a
/// peer that vanished without closing (a laptop's lid, a NAT that forgot the connection) is found.
pub const DEFAULT_CONFIG_JSON: &str = r#"{
    "version": 2,
    "controller": {},
    "workers": [
        {
            "type": "router",
            "realms": [
                {
                    "name": "realm1",
                    "roles": [
                        {
                            "name": "anonymous",
                            "permissions": [
                                {
                                    "uri": "",
                                    "match": "prefix",
                                    "allow": {
                                        "call": true,
                                        "register": true,
                                        "publish": true,
                                        "subscribe": true
                                    },
                                    "disclose": {
                                        "caller": false,
                                        "publisher": false
                                    },
                                    "cache": true
                                }
                            ]
                        }
                    ]
                }
            ],
            "transports": [
                {
                    "type": "universal",
                    "endpoint": {
                        "type": "tcp",
                        "interface": "127.0.0.1",
                        "port": 8080,
                        "backlog": 1024
                    },
                    "rawsocket": {
                        "serializers": ["cbor", "msgpack", "json"],
                        "options": {
                            "auto_ping_interval": 30000,
                            "auto_ping_timeout": 10000
                        }
                    },
                    "websocket": {
                        "ws": {
                            "type": "websocket",
                            "serializers": ["cbor", "msgpack", "json"],
                            "options": {
                                "auto_ping_interval": 30000,
                                "auto_ping_timeout": 10000
                            }
                        }
                    }
                }
            ]
        }
    ]
}
"#;

/// The port of the operations transport `switchboard init` writes (health, metrics, console and
/// the management API's WebSocket), on the loopback interface only.
pub const INIT_OPERATIONS_PORT: u16 = 8090;

/// The configuration `switchboard init` writes: the built-in default plus the node's `web/` folder
/// served at `/` (with listings) and a node info page at `/info`, as Crossbar's `init` template
/// does; and Switchboard's operations: the management API on realm `crossbar`, with a read-only
/// role (`mgmt-read`) and an admin role (`mgmt-admin`), neither anonymous, whose ticket
/// principals `viewer` and `admin` get random tickets here; and a web transport on
/// 127.0.0.1:[`INIT_OPERATIONS_PORT`] serving `health`, `metrics`, the `console` and the
/// WebSocket the console logs in through.
pub fn init_config_json() -> String {
    let mut config: serde_json::Value =
        serde_json::from_str(DEFAULT_CONFIG_JSON).expect("the built-in default config is JSON");
    let web = serde_json::json!({
        "paths": {
            "/": {"type": "static", "directory": "web", "options": {"enable_directory_listing": true}},
            "info": {"type": "nodeinfo"}
        }
    });
    if let Some(transport) = config.pointer_mut("/workers/0/transports/0") {
        transport["web"] = web;
    }
    config["controller"]["management"] = serde_json::json!({"realm": "crossbar"});
    let read = [
        "switchboard.node.get_status",
        "switchboard.realm.list",
        "switchboard.role.list",
        "switchboard.session.list",
        "switchboard.subscription.list",
        "switchboard.registration.list",
        "switchboard.worker.list",
        "switchboard.worker.log",
        "switchboard.transport.list",
        "switchboard.tls.get_certificates",
        "switchboard.link.list",
        "switchboard.metrics.get",
        "switchboard.config.get",
        "switchboard.access.get",
        "switchboard.log.level.get",
    ];
    let mut read_permissions: Vec<serde_json::Value> = read
        .iter()
        .map(|uri| serde_json::json!({"uri": uri, "allow": {"call": true}}))
        .collect();
    read_permissions.push(serde_json::json!({
        "uri": "switchboard.", "match": "prefix", "allow": {"subscribe": true}
    }));
    let management = serde_json::json!({
        "name": "crossbar",
        "roles": [
            {"name": "mgmt-read", "permissions": read_permissions},
            {"name": "mgmt-admin", "permissions": [{
                "uri": "switchboard.", "match": "prefix",
                "allow": {"call": true, "register": false, "publish": false, "subscribe": true}
            }]}
        ]
    });
    if let Some(realms) = config
        .pointer_mut("/workers/0/realms")
        .and_then(serde_json::Value::as_array_mut)
    {
        realms.push(management);
    }
    let ticket = || {
        let bytes: [u8; 18] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let operations = serde_json::json!({
        "type": "web",
        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": INIT_OPERATIONS_PORT},
        "paths": {
            "ws": {"type": "websocket", "auth": {"ticket": {"type": "static", "principals": {
                "admin": {"ticket": ticket(), "role": "mgmt-admin"},
                "viewer": {"ticket": ticket(), "role": "mgmt-read"}
            }}}},
            "health": {"type": "health"},
            "metrics": {"type": "metrics"},
            "console": {"type": "console", "options": {"realm": "crossbar"}}
        }
    });
    if let Some(transports) = config
        .pointer_mut("/workers/0/transports")
        .and_then(serde_json::Value::as_array_mut)
    {
        transports.push(operations);
    }
    // Serializing a JSON value cannot fail.
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}
