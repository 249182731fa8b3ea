//! `authserver.registration_rate`: how many dynamic registrations
//! (`POST /register`) one client address may make, as a token bucket per
//! address in memory. Open registration needs no credential, so without it one
//! script fills the client table (and the disk) as fast as it can send.
//!
//! IPv6 addresses are counted per /64, the block one host usually holds.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Most addresses remembered; full buckets are forgotten first.
const MAX_KEYS: usize = 10_000;

/// A rate such as `"20/min"`: `count` registrations per `per`, in bursts of up
/// to `count`; `"off"` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrationRate {
    /// Registrations allowed per `per` (0: no limit).
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl Default for RegistrationRate {
    fn default() -> Self {
        RegistrationRate {
            count: 20,
            per: Duration::from_secs(60),
        }
    }
}

impl fmt::Display for RegistrationRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("off");
        }
        write!(f, "{}/{}s", self.count, self.per.as_secs())
    }
}

impl std::str::FromStr for RegistrationRate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{s:?} is not a rate: write COUNT/UNIT like \"20/min\" (units: s, min, h), or \"off\""
            )
        };
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(RegistrationRate {
                count: 0,
                per: Duration::from_secs(1),
            });
        }
        let (count, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(format!(
                "{s:?}: a rate of 0 refuses every registration; write \"off\" for no limit or set authserver.registration.policy = \"off\""
            ));
        }
        Ok(RegistrationRate {
            count,
            per: Duration::from_secs(per),
        })
    }
}

impl<'de> Deserialize<'de> for RegistrationRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The buckets, one per client address.
#[derive(Debug)]
pub(crate) struct RegistrationLimiter {
    rate: RegistrationRate,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RegistrationLimiter {
    pub(crate) fn new(rate: RegistrationRate) -> RegistrationLimiter {
        RegistrationLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The configured rate.
    pub(crate) fn rate(&self) -> RegistrationRate {
        self.rate
    }

    /// Takes one registration for `ip`; `Err(wait)` when its bucket is empty.
    pub(crate) fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take_at(ip, Instant::now())
    }

    fn take_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.rate.count == 0 {
            return Ok(());
        }
        let cap = f64::from(self.rate.count);
        let per_sec = cap / self.rate.per.as_secs_f64();
        let Ok(mut buckets) = self.buckets.lock() else {
            // A panic elsewhere poisoned the lock: do not refuse everyone for it.
            return Ok(());
        };
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(&key(ip)) {
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < cap);
            if buckets.len() >= MAX_KEYS {
                tracing::warn!(
                    "registration rate limit: more than {MAX_KEYS} client addresses are registering at once; forgetting them all"
                );
                buckets.clear();
            }
        }
        let b = buckets.entry(key(ip)).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }
}

/// The address a bucket belongs to: IPv4 as is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates_and_refuses_nonsense() {
        let r: RegistrationRate = "20/min".parse().unwrap();
        assert_eq!((r.count, r.per), (20, Duration::from_secs(60)));
        let r: RegistrationRate = "5/s".parse().unwrap();
        assert_eq!((r.count, r.per), (5, Duration::from_secs(1)));
        assert_eq!("off".parse::<RegistrationRate>().unwrap().count, 0);
        for bad in ["20", "x/min", "20/fortnight", "0/min", ""] {
            let e = bad.parse::<RegistrationRate>().unwrap_err();
            assert!(e.contains("20/min") || e.contains("off"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_burst_then_one_per_interval_per_address() {
        let l = RegistrationLimiter::new("3/min".parse().unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take_at(a, t0).is_ok());
        }
        let wait = l.take_at(a, t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            l.take_at(b, t0).is_ok(),
            "another address has its own bucket"
        );
        assert!(l.take_at(a, t0 + Duration::from_secs(20)).is_ok());
        assert!(l.take_at(a, t0 + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = RegistrationLimiter::new("1/min".parse().unwrap());
        let t0 = Instant::now();
        assert!(l.take_at("2001:db8::1".parse().unwrap(), t0).is_ok());
        assert!(l.take_at("2001:db8::2".parse().unwrap(), t0).is_err());
        assert!(l.take_at("2001:db8:0:1::1".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn off_never_refuses() {
        let l = RegistrationLimiter::new("off".parse().unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(l.take(a).is_ok());
        }
    }
}
