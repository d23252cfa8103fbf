//! Request rate limits per device: a token bucket each, refilled at `per_second` up to `burst`.
//! A device's uplink sends one batch at a time, so only a misbehaving client meets the limit;
//! it gets 429 with `Retry-After`, which the uplink treats as "try again later". Failed logins
//! are limited too ([`LoginGuard`]), per name and address and per address. Both count in this
//! process only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate limit; `per_second` 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests at once.
    pub burst: f64,
}

impl RateLimit {
    /// No limit (a load test, a server of one's own devices in one process).
    pub const OFF: RateLimit = RateLimit {
        per_second: 0.0,
        burst: 0.0,
    };
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 60.0,
        }
    }
}

/// The buckets of every device.
#[derive(Debug, Default)]
pub struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    /// A limiter with `limit`.
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request of `device`: `Ok`, or `Err(seconds)` until one is allowed.
    pub fn take(&self, device: &str) -> Result<(), f64> {
        if self.limit.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets
            .entry(device.to_string())
            .or_insert((self.limit.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.limit.per_second)
            .min(self.limit.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / self.limit.per_second)
        }
    }
}

/// Failed logins tolerated per name and address, in [`LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: u32 = 5;
/// Per address: more (several people may share one address).
pub const MAX_FAILED_LOGINS_PER_ADDRESS: u32 = 20;
/// The window failed logins are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Names and addresses with failures counted, at most: past it, the expired are forgotten, then
/// the oldest (a flood of made-up names cannot grow the server's memory).
pub const MAX_COUNTED: usize = 10_000;

/// Failed logins per name and address, and per address, in this process (each replica counts
/// its own). A name is never locked for everyone: failures from one address lock that name
/// there only, so an attacker elsewhere cannot lock the owner out (a name guessed from many
/// addresses gets [`MAX_FAILED_LOGINS`] tries from each per window, each an argon2id hash).
///
/// Invariants: a name is kept only up to the length of a user name (longer ones, which no user
/// has, share one count), and at most [`MAX_COUNTED`] counts are kept.
#[derive(Debug, Default)]
pub struct LoginGuard {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginGuard {
    fn keys(name: &str, from: Option<IpAddr>) -> [(String, u32); 2] {
        let name = if crate::accounts::valid_name(name) {
            name
        } else {
            "(not a user name)"
        };
        let from = from.map_or("?".into(), |a| a.to_string());
        [
            (format!("pair:{from} {name}"), MAX_FAILED_LOGINS),
            (format!("addr:{from}"), MAX_FAILED_LOGINS_PER_ADDRESS),
        ]
    }

    /// None when `name` from `from` may try; else how long until it may.
    pub fn blocked(&self, name: &str, from: Option<IpAddr>) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(name, from)
            .iter()
            .filter_map(|(key, max)| {
                let (n, since) = failures.get(key)?;
                let left = LOGIN_WINDOW.checked_sub(since.elapsed())?;
                (*n >= *max).then_some(left)
            })
            .max()
    }

    /// Counts a failed login.
    pub fn failed(&self, name: &str, from: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() + 2 > MAX_COUNTED {
            failures.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        }
        if failures.len() + 2 > MAX_COUNTED {
            // The oldest tenth goes at once, so that a flood sorts once in a while.
            let mut since: Vec<Instant> = failures.values().map(|(_, t)| *t).collect();
            let cut = since.len() / 10;
            let (_, oldest_kept, _) = since.select_nth_unstable(cut);
            let oldest_kept = *oldest_kept;
            failures.retain(|_, (_, t)| *t >= oldest_kept);
        }
        for (key, _) in Self::keys(name, from) {
            let entry = failures.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= LOGIN_WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    /// Forgets the failures of `name` from `from` (it logged in there).
    pub fn succeeded(&self, name: &str, from: Option<IpAddr>) {
        let [(pair, _), _] = Self::keys(name, from);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_wait_their_turn() {
        let l = Limiter::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        assert!((0..3).all(|_| l.take("a").is_ok()));
        let wait = l.take("a").unwrap_err();
        assert!(wait > 0.0 && wait <= 0.1, "{wait}");
        assert!(l.take("b").is_ok(), "each device has its own bucket");
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(l.take("a").is_ok());
        let off = Limiter::new(RateLimit::OFF);
        assert!((0..1000).all(|_| off.take("a").is_ok()));
    }

    #[test]
    fn made_up_names_cannot_grow_the_counts_without_bound() {
        let guard = LoginGuard::default();
        // 300 names of 100 kB each, from one address; then 30,000 short ones from as many.
        for i in 0..300 {
            guard.failed(&format!("{i}{}", "x".repeat(100_000)), None);
        }
        let bytes =
            |g: &LoginGuard| -> usize { g.failures.lock().unwrap().keys().map(String::len).sum() };
        assert!(bytes(&guard) < 1_000, "{} bytes kept", bytes(&guard));
        for i in 0..30_000u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            guard.failed(&format!("user{i}"), Some(addr));
        }
        let kept = guard.failures.lock().unwrap().len();
        assert!(kept <= MAX_COUNTED, "{kept} counts kept");
        // The newest are still counted.
        for _ in 0..MAX_FAILED_LOGINS {
            guard.failed("ana", Some("10.9.9.9".parse().unwrap()));
        }
        assert!(
            guard
                .blocked("ana", Some("10.9.9.9".parse().unwrap()))
                .is_some()
        );
    }

    #[test]
    fn failed_logins_block_a_name_after_the_limit() {
        let guard = LoginGuard::default();
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILED_LOGINS {
            assert!(guard.blocked("ana", Some(addr)).is_none());
            guard.failed("ana", Some(addr));
        }
        assert!(guard.blocked("ana", Some(addr)).is_some());
        // Another name from the same address still may (up to the address's own limit), and
        // the same name from another address (the owner, elsewhere).
        assert!(guard.blocked("ben", Some(addr)).is_none());
        assert!(
            guard
                .blocked("ana", Some("10.0.0.2".parse().unwrap()))
                .is_none()
        );
        guard.succeeded("ana", Some(addr));
        assert!(guard.blocked("ana", Some(addr)).is_none());
        // An address with failures for many names is blocked for all.
        for i in 0..MAX_FAILED_LOGINS_PER_ADDRESS {
            guard.failed(&format!("name{i}"), Some(addr));
        }
        assert!(guard.blocked("ana", Some(addr)).is_some());
    }
}
