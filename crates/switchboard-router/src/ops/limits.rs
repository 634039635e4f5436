//! The process's open-files limit: every connection is a file descriptor, and the soft limit a
//! shell hands a process (often 1,024) is far below what a router of many idle sessions needs,
//! while the hard limit the administrator set is the real ceiling. `switchboard start` raises the
//! soft limit to the hard one before it listens, and says so.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The open-files limit before and after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (the hard limit, where raising it worked).
    pub now: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the process's soft limit of open files to its hard limit.
pub fn raise_open_files() -> Result<OpenFiles, String> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("reading the limit: {e}"))?;
    // An unlimited hard limit still stops at the kernel's ceiling for one process.
    let hard = if hard == nix::sys::resource::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    if soft >= hard {
        return Ok(OpenFiles {
            before: soft,
            now: soft,
            hard,
        });
    }
    let (_, hard_now) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("reading the limit: {e}"))?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard_now)
        .map_err(|e| format!("raising the limit from {soft} to {hard}: {e}"))?;
    Ok(OpenFiles {
        before: soft,
        now: hard,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let raised = raise_open_files().expect("getrlimit and setrlimit work here");
        assert_eq!(raised.now, raised.hard);
        assert!(raised.before <= raised.now);
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, raised.now);
    }
}
