//! Rate limits of things that cost others something (invitations ring people): at most `limit`
//! per `window` per key, in fixed windows. Pure bookkeeping with time passed in.

use dashmap::DashMap;
use std::time::{Duration, Instant};

pub struct RateLimit {
    limit: u32,
    window: Duration,
    used: DashMap<String, (Instant, u32)>,
}

impl RateLimit {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            used: DashMap::new(),
        }
    }

    /// Takes `n` from `key`'s allowance; false (and nothing taken) if that would exceed it.
    pub fn take(&self, key: &str, n: u32, now: Instant) -> bool {
        let mut e = self.used.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= self.window {
            *e = (now, 0);
        }
        if e.1.saturating_add(n) > self.limit {
            return false;
        }
        e.1 += n;
        true
    }

    /// Forgets keys whose window has passed.
    pub fn purge(&self, now: Instant) {
        self.used
            .retain(|_, (start, _)| now.duration_since(*start) < self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_refreshes() {
        let r = RateLimit::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(r.take("alice", 3, t0));
        assert!(!r.take("alice", 3, t0), "3 + 3 > 5: nothing taken");
        assert!(r.take("alice", 2, t0));
        assert!(!r.take("alice", 1, t0));
        assert!(r.take("bob", 5, t0));
        assert!(r.take("alice", 5, t0 + Duration::from_secs(61)));
        r.purge(t0 + Duration::from_secs(200));
        assert!(r.used.is_empty());
    }
}
