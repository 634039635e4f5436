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

/// The configuration `switchboard init` writes: the built-in default plus the node's `web/` folder
/// served at `/` (with listings) and a node info page at `/info`, as Crossbar's `init` template does.
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
    // Serializing a JSON value cannot fail.
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}
