//! The node config loader on YAML text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_router::LoadedConfig;

fuzz_target!(|text: &str| {
    let _ = LoadedConfig::from_yaml(text, std::path::Path::new("/nonexistent"));
});
