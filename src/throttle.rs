//! Failure throttling for passwords, PINs and invitation tokens, shared by SIP and HTTP.
//!
//! Guessing is counted under three keys at once (RFC 3261 leaves this to the server):
//! - the **source and target together** (one address trying one account or conference): a low
//!   limit, so a guesser is stopped quickly;
//! - the **source** (one address spraying many targets): a higher limit;
//! - the **target** across all sources: a much higher ceiling, so that failures from one
//!   address never lock the rightful user out from another.
//!
//! A key blocked again soon after its last block is blocked twice as long (up to a cap).
//! Pure bookkeeping with time passed in; the caller decides what a failure is and what to answer.

use dashmap::DashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures within `window` that block the key.
    pub limit: u32,
    pub window: Duration,
    /// The first block; each further block within `max_block` of the last doubles it.
    pub block: Duration,
    pub max_block: Duration,
}

/// The three policies, by kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    pub pair: ThrottlePolicy,
    pub source: ThrottlePolicy,
    pub target: ThrottlePolicy,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            pair: ThrottlePolicy {
                limit: 5,
                window: minute,
                block: minute,
                max_block: Duration::from_secs(3600),
            },
            source: ThrottlePolicy {
                limit: 30,
                window: minute,
                block: minute,
                max_block: Duration::from_secs(3600),
            },
            target: ThrottlePolicy {
                limit: 200,
                window: minute,
                block: Duration::from_secs(30),
                max_block: Duration::from_secs(900),
            },
        }
    }
}

impl ThrottleLimits {
    fn of(&self, kind: Kind) -> ThrottlePolicy {
        match kind {
            Kind::Pair => self.pair,
            Kind::Source => self.source,
            Kind::Target => self.target,
        }
    }
}

/// What is being guessed: an account, or a conference's PIN or invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Account(&'a str),
    Conference(&'a str),
}

impl Target<'_> {
    fn key(self) -> String {
        match self {
            Target::Account(a) => format!("user:{a}"),
            Target::Conference(c) => format!("conf:{c}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Pair,
    Source,
    Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse without looking further; the client may retry after this long.
    Blocked(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
    /// The length of the last block, for the backoff.
    last_block: Duration,
}

pub struct Throttle {
    limits: ThrottleLimits,
    entries: DashMap<(Kind, String), Entry>,
}

impl Throttle {
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            entries: DashMap::new(),
        }
    }

    fn keys(source: IpAddr, target: Target) -> [(Kind, String); 3] {
        let t = target.key();
        [
            (Kind::Pair, format!("{source}|{t}")),
            (Kind::Source, source.to_string()),
            (Kind::Target, t),
        ]
    }

    /// Whether `source` may try `target` now. Consult it before any database read.
    pub fn check(&self, source: IpAddr, target: Target, now: Instant) -> Verdict {
        Self::keys(source, target)
            .iter()
            .filter_map(|k| self.entries.get(k).and_then(|e| e.blocked_until))
            .filter(|until| *until > now)
            .max()
            .map_or(Verdict::Allow, |until| Verdict::Blocked(until - now))
    }

    /// Records a failed try; returns true if it blocked one of the keys.
    pub fn failure(&self, source: IpAddr, target: Target, now: Instant) -> bool {
        let mut blocked = false;
        for key in Self::keys(source, target) {
            let p = self.limits.of(key.0);
            let mut e = self.entries.entry(key).or_insert(Entry {
                window_start: now,
                failures: 0,
                blocked_until: None,
                last_block: Duration::ZERO,
            });
            if now.duration_since(e.window_start) > p.window {
                e.window_start = now;
                e.failures = 0;
            }
            e.failures += 1;
            if e.failures >= p.limit && e.blocked_until.is_none_or(|u| u <= now) {
                let recent = e
                    .blocked_until
                    .is_some_and(|u| now.duration_since(u) < p.max_block);
                let length = if recent {
                    (e.last_block * 2).min(p.max_block)
                } else {
                    p.block
                };
                e.blocked_until = Some(now + length);
                e.last_block = length;
                e.failures = 0;
                e.window_start = now;
                blocked = true;
            }
        }
        blocked
    }

    /// A success clears the failures of that source on that target (not the others).
    pub fn success(&self, source: IpAddr, target: Target) {
        let [pair, _, _] = Self::keys(source, target);
        self.entries.remove(&pair);
    }

    /// Forgets keys with nothing left to remember; returns how many are blocked.
    pub fn purge(&self, now: Instant) -> usize {
        let limits = self.limits;
        self.entries.retain(|(kind, _), e| {
            let p = limits.of(*kind);
            // Blocked keys are kept a while after the block for the backoff to see them.
            e.blocked_until
                .is_some_and(|u| u > now || now.duration_since(u) < p.max_block)
                || now.duration_since(e.window_start) <= p.window
        });
        self.entries
            .iter()
            .filter(|e| e.blocked_until.is_some_and(|u| u > now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(limit: u32) -> ThrottlePolicy {
        ThrottlePolicy {
            limit,
            window: Duration::from_secs(10),
            block: Duration::from_secs(30),
            max_block: Duration::from_secs(100),
        }
    }

    fn limits() -> ThrottleLimits {
        ThrottleLimits {
            pair: policy(3),
            source: policy(6),
            target: policy(20),
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    const ALICE: Target = Target::Account("alice");

    #[test]
    fn a_guesser_is_blocked_but_the_owner_elsewhere_is_not() {
        let t = Throttle::new(limits());
        let t0 = Instant::now();
        assert!(!t.failure(ip(1), ALICE, t0));
        assert!(!t.failure(ip(1), ALICE, t0));
        assert!(t.failure(ip(1), ALICE, t0 + Duration::from_secs(1)));
        assert_eq!(
            t.check(ip(1), ALICE, t0 + Duration::from_secs(11)),
            Verdict::Blocked(Duration::from_secs(20))
        );
        // The same account from another address, and another account from the guesser's.
        assert_eq!(t.check(ip(2), ALICE, t0), Verdict::Allow);
        assert_eq!(t.check(ip(1), Target::Account("bob"), t0), Verdict::Allow);
        assert_eq!(
            t.check(ip(1), ALICE, t0 + Duration::from_secs(32)),
            Verdict::Allow
        );
    }

    #[test]
    fn spraying_from_one_source_blocks_the_source() {
        let t = Throttle::new(limits());
        let t0 = Instant::now();
        let names = ["a", "b", "c", "d", "e", "f"];
        for n in names {
            t.failure(ip(1), Target::Account(n), t0);
        }
        assert!(matches!(
            t.check(ip(1), Target::Account("z"), t0),
            Verdict::Blocked(_)
        ));
        assert_eq!(t.check(ip(2), Target::Account("z"), t0), Verdict::Allow);
    }

    #[test]
    fn many_sources_reach_the_target_ceiling() {
        let t = Throttle::new(limits());
        let t0 = Instant::now();
        for n in 0..20 {
            t.failure(ip(n), Target::Conference("c1"), t0);
        }
        assert!(matches!(
            t.check(ip(100), Target::Conference("c1"), t0),
            Verdict::Blocked(_)
        ));
    }

    #[test]
    fn blocks_back_off_and_success_clears_the_pair() {
        let t = Throttle::new(limits());
        let mut now = Instant::now();
        for round in 0..3u32 {
            for _ in 0..3 {
                t.failure(ip(1), ALICE, now);
            }
            let expected = Duration::from_secs(30 * 2u64.pow(round)).min(Duration::from_secs(100));
            assert_eq!(t.check(ip(1), ALICE, now), Verdict::Blocked(expected));
            now += expected + Duration::from_secs(1);
        }
        t.failure(ip(1), ALICE, now);
        t.success(ip(1), ALICE);
        assert!(!t.failure(ip(1), ALICE, now));
        assert!(!t.failure(ip(1), ALICE, now));
        assert_eq!(t.purge(now + Duration::from_secs(1000)), 0);
    }
}
