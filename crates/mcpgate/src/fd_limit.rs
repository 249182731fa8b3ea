//! The open-file limit: raised from the soft to the hard limit at start, and
//! the connection cap derived from it, so that idle or slow sockets are shed
//! with a 503 long before `accept` fails with "Too many open files".

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The connection cap when none is configured never exceeds this.
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit now in force (`None` when it cannot be read). Logs what it did.
pub(crate) fn raise() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot read the open-file limit (RLIMIT_NOFILE): {e}");
            return None;
        }
    };
    if soft >= hard {
        tracing::info!(limit = soft, "open-file limit (RLIMIT_NOFILE)");
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::info!(
                from = soft,
                to = hard,
                "raised the open-file limit (RLIMIT_NOFILE) to its hard limit"
            );
            Some(hard)
        }
        Err(e) => {
            tracing::warn!(
                limit = soft,
                hard,
                "cannot raise the open-file limit (RLIMIT_NOFILE) to its hard limit: {e}"
            );
            Some(soft)
        }
    }
}

/// The connection cap: `configured`, or half the open-file limit (the other
/// half is for children's pipes, upstream connections, the database and the
/// 503s answered while at the cap), at most 10 000.
pub(crate) fn max_connections(configured: Option<usize>, nofile: Option<u64>) -> usize {
    if let Some(n) = configured {
        if let Some(limit) = nofile
            && n as u64 > limit / 2
        {
            tracing::warn!(
                max_connections = n,
                open_file_limit = limit,
                "server.max_connections is more than half the open-file limit: under load, accept may fail with \"Too many open files\" before the cap answers 503; raise the limit (LimitNOFILE= in systemd, ulimit -n) or lower the cap"
            );
        }
        return n;
    }
    let derived = nofile.map_or(DEFAULT_MAX_CONNECTIONS, |l| l / 2);
    usize::try_from(derived.clamp(16, DEFAULT_MAX_CONNECTIONS)).unwrap_or(16)
}

#[cfg(test)]
mod tests {
    use super::max_connections;

    #[test]
    fn the_default_cap_is_half_the_fd_limit_within_bounds() {
        assert_eq!(max_connections(None, Some(256)), 128);
        assert_eq!(max_connections(None, Some(1_048_576)), 10_000);
        assert_eq!(max_connections(None, Some(20)), 16);
        assert_eq!(max_connections(None, None), 10_000);
        assert_eq!(max_connections(Some(5), Some(256)), 5);
    }
}
