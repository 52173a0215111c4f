//! Load shedding at the door, before a datagram reaches the core: while the core is behind,
//! new calls get 503 + Retry-After at once. A retransmitted INVITE whose first copy went in
//! must go in too (its transaction answers it): refusing it would tell the caller "failed"
//! while the core has already answered 200, leaving a call the caller has given up. So the
//! door remembers the branches of the INVITEs it let in, the last [`REMEMBERED`] of them.
//! Whether the core is behind is judged by how long messages wait for it ([`QueueDelay`]).

use bytes::Bytes;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

/// INVITE branches remembered: some 15 s at 4 000 new calls per second, longer than a
/// caller keeps retransmitting before the core (which answers in milliseconds when not
/// overloaded) has answered the first copy.
const REMEMBERED: usize = 65_536;

/// Branches are kept as keyed 64-bit hashes in tables allocated once: thousands of small
/// long-lived allocations spread over the heap would keep the allocator from giving memory back
/// after a burst.
pub struct Door {
    passed: HashSet<u64>,
    order: VecDeque<u64>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Door {
    fn default() -> Self {
        Self {
            passed: HashSet::with_capacity(REMEMBERED + 1),
            order: VecDeque::with_capacity(REMEMBERED + 1),
            hasher: Default::default(),
        }
    }
}

impl Door {
    /// What to answer instead of letting `datagram` in while the core is `behind`: a 503 for
    /// a new INVITE that is not a retransmission of one let in before; None to let it in.
    pub fn check(&mut self, datagram: &[u8], behind: bool) -> Option<Bytes> {
        if !datagram.starts_with(b"INVITE ") {
            return None;
        }
        let branch = self.hasher.hash_one(branch_of(datagram)?);
        if self.passed.contains(&branch) {
            return None;
        }
        if behind {
            if let Some(busy) = crate::transaction::refuse_new_call(datagram) {
                return Some(busy);
            }
        }
        if self.passed.insert(branch) {
            self.order.push_back(branch);
            if self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.passed.remove(&old);
                }
            }
        }
        None
    }
}

/// The branch of the first Via, found without parsing the message (`branch=` up to the next
/// `;`, `,`, blank or line end). A branch that is not there, or is odd, means "let it in".
fn branch_of(datagram: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"branch=";
    let head = &datagram[..datagram.len().min(4096)];
    let start = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = head[start..]
        .iter()
        .position(|b| matches!(b, b';' | b',' | b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(head.len() - start);
    let branch = &head[start..start + len];
    (!branch.is_empty() && branch.len() <= 256).then_some(branch)
}

/// The core is behind when what it takes from its queue has waited longer than this (and some
/// is still waiting), or when the queue is half full whatever the delay. 100 ms leaves the
/// calls let in well inside the 500 ms after which callers retransmit, while a passing hiccup
/// of the core refuses nobody (the README has the thresholds measured).
const MAX_QUEUE_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether the core is behind, with `waiting` of `capacity` queue places taken and the last
/// message taken having waited `delay`. A delay left over from a burst counts only while
/// messages are still waiting.
pub fn behind(waiting: usize, capacity: usize, delay: std::time::Duration) -> bool {
    waiting > capacity / 2 || (waiting > capacity / 32 && delay > MAX_QUEUE_DELAY)
}

/// How long the last message the core took had waited in its queue, shared by the core (which
/// measures it) and the door (which sheds on it).
#[derive(Debug, Default)]
pub struct QueueDelay(std::sync::atomic::AtomicU64);

impl QueueDelay {
    pub fn set(&self, waited: std::time::Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.0.store(micros, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(branch: &str, to_tag: &str) -> Vec<u8> {
        format!(
            "INVITE sip:c@h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
From: <sip:a@h>;tag=1\r\nTo: <sip:c@h>{to_tag}\r\nCall-ID: {branch}\r\nCSeq: 1 INVITE\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_retransmission_of_a_call_let_in_is_let_in_while_new_calls_are_refused() {
        let mut door = Door::default();
        assert!(door.check(&invite("z9hG4bK1", ""), false).is_none());
        // Behind now: the retransmitted first INVITE goes in, a new one is refused.
        assert!(door.check(&invite("z9hG4bK1", ""), true).is_none());
        let busy = door.check(&invite("z9hG4bK2", ""), true).expect("refused");
        assert!(busy.starts_with(b"SIP/2.0 503"));
        // ... and stays refused on its own retransmission.
        assert!(door.check(&invite("z9hG4bK2", ""), true).is_some());
        // A re-INVITE in a call and other methods are never refused.
        assert!(door.check(&invite("z9hG4bK3", ";tag=x"), true).is_none());
        assert!(door
            .check(
                b"BYE sip:c@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK4\r\n\r\n",
                true
            )
            .is_none());
    }

    #[test]
    fn behind_by_delay_while_messages_wait_or_by_a_half_full_queue() {
        let ms = std::time::Duration::from_millis;
        assert!(
            !behind(10, 1024, ms(500)),
            "an old delay with an empty queue"
        );
        assert!(behind(100, 1024, ms(150)));
        assert!(!behind(100, 1024, ms(20)));
        assert!(behind(600, 1024, ms(0)));
    }

    #[test]
    fn it_remembers_a_bounded_number_of_branches() {
        let mut door = Door::default();
        for n in 0..REMEMBERED + 10 {
            assert!(door
                .check(&invite(&format!("z9hG4bK{n}"), ""), false)
                .is_none());
        }
        assert_eq!(door.passed.len(), REMEMBERED);
        assert_eq!(door.order.len(), REMEMBERED);
        assert!(
            door.check(&invite("z9hG4bK0", ""), true).is_some(),
            "forgotten"
        );
        assert!(door
            .check(&invite(&format!("z9hG4bK{}", REMEMBERED + 5), ""), true)
            .is_none());
    }
}
