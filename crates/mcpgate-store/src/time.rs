//! Times as stored (seconds since the Unix epoch) and as shown (RFC 3339, UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; times before it count as 0.
pub(crate) fn to_unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The inverse of [`to_unix`]; negative values count as the epoch.
pub(crate) fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// `t` as RFC 3339 in UTC to the second, e.g. `2026-11-22T06:08:19Z`.
pub fn format_utc(t: SystemTime) -> String {
    mcpgate_guard::time::rfc3339(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(from_unix(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(from_unix(1_795_327_699)), "2026-11-22T06:08:19Z");
    }

    #[test]
    fn unix_round_trip() {
        assert_eq!(to_unix(from_unix(1_700_000_000)), 1_700_000_000);
        assert_eq!(to_unix(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
