//! The node config loader on JSON text (with comments and trailing commas): parsing, `${VAR}`
//! substitution, every type error with its position, validation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_router::LoadedConfig;

fuzz_target!(|text: &str| {
    let _ = LoadedConfig::from_json(text, std::path::Path::new("/nonexistent"));
});
