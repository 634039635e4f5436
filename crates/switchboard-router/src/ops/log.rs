//! The log level of the running process, which the management API reads and changes
//! (`switchboard.log.level.get` and `.set`). The process installs its logger once (the
//! `switchboard` binary does, at start) and hands over how to change its filter; a program that
//! embeds the router without doing so has no level to change, and the API says so.

use std::sync::{Mutex, OnceLock};

/// Changes the logger's filter; `Err` says why a filter was refused.
pub type SetFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct LogLevel {
    current: Mutex<String>,
    set: SetFilter,
}

static LOG_LEVEL: OnceLock<LogLevel> = OnceLock::new();

/// Makes the process's log filter, now `initial`, changeable through [`set`]. Only the first
/// call counts (there is one logger per process).
pub fn install(initial: &str, set: SetFilter) {
    let _ = LOG_LEVEL.set(LogLevel {
        current: Mutex::new(initial.to_owned()),
        set,
    });
}

/// The log filter now (`info`, `debug`, `switchboard_router=trace,info`); `None` where the
/// process did not install a changeable logger.
pub fn get() -> Option<String> {
    LOG_LEVEL
        .get()
        .map(|l| crate::locks::lock(&l.current).clone())
}

/// Sets the log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a
/// per-module filter in `RUST_LOG`'s syntax.
pub fn set(filter: &str) -> Result<(), String> {
    let level = LOG_LEVEL
        .get()
        .ok_or("this process has no changeable log level (it did not install one)")?;
    (level.set)(filter)?;
    *crate::locks::lock(&level.current) = filter.to_owned();
    Ok(())
}
