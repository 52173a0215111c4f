//! The location service: where each user's devices can be reached (RFC 3261 §10).
//! Pure data with time passed in; the app turns REGISTER requests into calls here.

use crate::sip::SipUri;
use crate::transport::peer::Peer;
use dashmap::DashMap;
use std::time::{Duration, Instant};

pub const DEFAULT_EXPIRES: u32 = 3600;
pub const MIN_EXPIRES: u32 = 10;
pub const MAX_EXPIRES: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: SipUri,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from: requests to this device go there (NAT, TCP connection).
    pub peer: Peer,
}

/// One requested change from a REGISTER.
pub struct ContactUpdate {
    pub contact: SipUri,
    pub expires: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("CSeq not higher than the binding's (RFC 3261 §10.3 step 7)")]
    OutOfOrder,
}

#[derive(Default)]
pub struct Registrar {
    bindings: DashMap<String, Vec<Binding>>,
}

impl Registrar {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the contacts of one REGISTER and returns the user's bindings afterwards.
    pub fn update(
        &self,
        user: &str,
        updates: Vec<ContactUpdate>,
        call_id: &str,
        cseq: u32,
        peer: Peer,
        now: Instant,
    ) -> Result<Vec<Binding>, RegisterError> {
        let mut entry = self.bindings.entry(user.to_string()).or_default();
        entry.retain(|b| b.expires_at > now);
        for u in &updates {
            if let Some(b) = entry.iter().find(|b| b.contact == u.contact) {
                if b.call_id == call_id && cseq <= b.cseq {
                    return Err(RegisterError::OutOfOrder);
                }
            }
        }
        for u in updates {
            entry.retain(|b| b.contact != u.contact);
            if u.expires > 0 {
                entry.push(Binding {
                    contact: u.contact,
                    expires_at: now + Duration::from_secs(u.expires.into()),
                    call_id: call_id.to_string(),
                    cseq,
                    peer,
                });
            }
        }
        let result = entry.clone();
        let empty = entry.is_empty();
        drop(entry);
        if empty {
            self.bindings.remove_if(user, |_, v| v.is_empty());
        }
        Ok(result)
    }

    /// Removes every binding of a user (`Contact: *` with `Expires: 0`).
    pub fn remove_all(&self, user: &str) {
        self.bindings.remove(user);
    }

    /// The user's live bindings.
    pub fn lookup(&self, user: &str, now: Instant) -> Vec<Binding> {
        self.bindings
            .get(user)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Drops expired bindings; returns how many remain.
    /// Drops bindings made over a connection (TCP, TLS, WebSocket) that has closed: the device
    /// cannot be reached through it any more (RFC 5626 §5.2 spirit; RFC 7118 §5).
    pub fn purge_closed(&self, open: impl Fn(u64) -> bool) {
        self.bindings.retain(|_, v| {
            v.retain(|b| b.peer.connection.is_none_or(&open));
            !v.is_empty()
        });
    }

    pub fn purge(&self, now: Instant) -> usize {
        self.bindings.retain(|_, v| {
            v.retain(|b| b.expires_at > now);
            !v.is_empty()
        });
        self.bindings.iter().map(|e| e.value().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(p: u16) -> SipUri {
        SipUri::new(Some("bob"), "127.0.0.1", Some(p))
    }

    #[test]
    fn register_refresh_expire_unregister() {
        let r = Registrar::new();
        let peer = Peer::udp("127.0.0.1:5070".parse().unwrap());
        let t0 = Instant::now();
        let b = r
            .update(
                "bob",
                vec![ContactUpdate {
                    contact: uri(5070),
                    expires: 60,
                }],
                "c",
                1,
                peer,
                t0,
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        r.update(
            "bob",
            vec![ContactUpdate {
                contact: uri(5071),
                expires: 30,
            }],
            "c",
            2,
            peer,
            t0,
        )
        .unwrap();
        assert_eq!(r.lookup("bob", t0).len(), 2);
        assert_eq!(r.lookup("bob", t0 + Duration::from_secs(45)).len(), 1);
        assert_eq!(
            r.update(
                "bob",
                vec![ContactUpdate {
                    contact: uri(5070),
                    expires: 60
                }],
                "c",
                1,
                peer,
                t0
            ),
            Err(RegisterError::OutOfOrder)
        );
        r.update(
            "bob",
            vec![ContactUpdate {
                contact: uri(5070),
                expires: 0,
            }],
            "c",
            3,
            peer,
            t0,
        )
        .unwrap();
        assert_eq!(r.lookup("bob", t0).len(), 1);
        assert_eq!(r.purge(t0 + Duration::from_secs(100)), 0);
        assert!(r.lookup("bob", t0).is_empty());
    }
}
