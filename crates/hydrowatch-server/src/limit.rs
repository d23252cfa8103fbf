//! Request rate limits per device: a token bucket each, refilled at `per_second` up to `burst`.
//! A device's uplink sends one batch at a time, so only a misbehaving client meets the limit;
//! it gets 429 with `Retry-After`, which the uplink treats as "try again later".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

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
}
