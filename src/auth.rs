//! Digest authentication of requests (RFC 3261 §22, RFC 8760).
//!
//! Nonces are stateless to mint (a timestamp and a keyed hash of it) and expire after
//! `NONCE_LIFETIME`; the highest nonce count seen per nonce is remembered so a captured
//! response cannot be replayed.

use crate::sip::digest::{challenge, Algorithm, Credentials};
use dashmap::DashMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No usable credentials: challenge.
    Missing,
    /// The nonce is ours but too old: challenge again with `stale=true`.
    Stale,
    /// Wrong password, unknown user, replay, forged nonce or wrong realm.
    Invalid(&'static str),
}

const NONCE_LEN: usize = 56;

/// When a nonce of ours was minted (seconds since the epoch).
fn minted_at(nonce: &str) -> Option<u64> {
    u64::from_str_radix(nonce.get(..16)?, 16).ok()
}

/// Compares secrets (PINs, hashes, MACs) in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// RFC 3261 §22.4: the digest `uri` names the Request-URI, so credentials made for one
/// resource are not taken for another. Compared as URIs (scheme, user, host; ports only when
/// both name one: `sip:HOST` and `sip:HOST:PORT` of the server are alike). A URI of the server
/// itself (no user) covers its resources: SIPp 3.6 signs every request for `sip:HOST:PORT`.
fn same_resource(digest_uri: &str, request_uri: &crate::sip::SipUri) -> bool {
    let Ok(d) = crate::sip::SipUri::parse(digest_uri) else {
        return false;
    };
    let ports_agree = match (d.port, request_uri.port) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    d.scheme == request_uri.scheme
        && (d.user.is_none() || d.user == request_uri.user)
        && d.host.eq_ignore_ascii_case(&request_uri.host)
        && ports_agree
}

pub struct Authenticator {
    realm: String,
    order: Vec<Algorithm>,
    key: [u8; 32],
    counts: DashMap<String, u32>,
}

impl Authenticator {
    pub fn new(realm: &str, order: Vec<Algorithm>) -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            realm: realm.to_string(),
            order,
            key,
            counts: DashMap::new(),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The server-wide challenge order (accounts may override it).
    pub fn default_order(&self) -> &[Algorithm] {
        &self.order
    }

    fn mac(&self, stamp: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(stamp.as_bytes());
        hex::encode(&h.finalize()[..12])
    }

    /// `stamp ‖ random ‖ mac`: 16 hex digits of seconds since the epoch, 16 random hex digits
    /// (so that two challenges in the same second differ: a client starts each nonce at
    /// `nc=00000001`), and 24 hex digits of a keyed hash of both.
    fn mint_nonce(&self, now: SystemTime) -> String {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let body = format!("{secs:016x}{:016x}", rand::rngs::OsRng.next_u64());
        format!("{body}{}", self.mac(&body))
    }

    /// One challenge header value per algorithm of `order`.
    pub fn challenges(&self, order: &[Algorithm], stale: bool, now: SystemTime) -> Vec<String> {
        let nonce = self.mint_nonce(now);
        order
            .iter()
            .map(|a| challenge(&self.realm, &nonce, *a, stale))
            .collect()
    }

    /// Checks the algorithm (one of `allowed`), realm and nonce of `creds`.
    pub fn check_nonce(
        &self,
        creds: &Credentials,
        allowed: &[Algorithm],
        now: SystemTime,
    ) -> Result<Algorithm, Rejection> {
        let alg = creds
            .algorithm()
            .filter(|a| allowed.contains(a))
            .ok_or(Rejection::Invalid("algorithm"))?;
        if creds.realm != self.realm {
            return Err(Rejection::Missing);
        }
        let n = &creds.nonce;
        if n.len() != NONCE_LEN
            || !n.is_ascii()
            || !constant_time_eq(self.mac(&n[..32]).as_bytes(), &n.as_bytes()[32..])
        {
            // Not minted by this process (e.g. before a restart): ask again.
            return Err(Rejection::Stale);
        }
        let minted = minted_at(n).ok_or(Rejection::Stale)?;
        let age = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .saturating_sub(minted);
        if age > NONCE_LIFETIME.as_secs() {
            return Err(Rejection::Stale);
        }
        Ok(alg)
    }

    /// Verifies the response against the stored HA1 and records the nonce count.
    pub fn verify(
        &self,
        creds: &Credentials,
        alg: Algorithm,
        ha1: &str,
        req: &crate::sip::Request,
    ) -> Result<(), Rejection> {
        if !same_resource(&creds.uri, &req.uri) {
            return Err(Rejection::Invalid("digest uri is not the Request-URI"));
        }
        if creds.qop.as_deref() != Some("auth") {
            return Err(Rejection::Invalid("qop=auth required"));
        }
        let nc = creds
            .nonce_count()
            .ok_or(Rejection::Invalid("nonce count"))?;
        let expected = creds.expected_response(alg, ha1, req.method.as_str());
        if !constant_time_eq(
            expected.as_bytes(),
            creds.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(Rejection::Invalid("response"));
        }
        // Replay protection: nonce counts must increase.
        let mut last = self.counts.entry(creds.nonce.clone()).or_insert(0);
        if nc <= *last {
            return Err(Rejection::Invalid("nonce count replayed"));
        }
        *last = nc;
        Ok(())
    }

    /// Forgets nonce counts of nonces that can no longer be used.
    pub fn purge(&self, now: SystemTime) {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.counts.retain(|nonce, _| {
            minted_at(nonce).is_some_and(|t| now.saturating_sub(t) <= NONCE_LIFETIME.as_secs())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::{authorize, parse_challenge, Challenge};

    fn setup() -> (Authenticator, String) {
        let a = Authenticator::new("convoke", vec![Algorithm::Md5, Algorithm::Sha256]);
        let ch = a.challenges(a.default_order(), false, SystemTime::now());
        assert!(ch[0].contains("MD5") && ch[1].contains("SHA-256"));
        (a, parse_challenge(&ch[0]).unwrap().nonce)
    }

    fn register() -> crate::sip::Request {
        crate::sip::Request::new(
            crate::sip::Method::Register,
            crate::sip::SipUri::parse("sip:h").unwrap(),
        )
    }

    #[test]
    fn credentials_for_another_uri_are_refused() {
        let (a, nonce) = setup();
        let ch = Challenge {
            realm: "convoke".into(),
            nonce: nonce.clone(),
            algorithm: Algorithm::Md5,
        };
        let for_conf2 = authorize(&ch, "alice", "pw", "INVITE", "sip:conf2@h", 1, "cn");
        let c = Credentials::parse(&for_conf2).unwrap();
        let mut elsewhere = register();
        elsewhere.method = crate::sip::Method::Invite;
        elsewhere.uri = crate::sip::SipUri::parse("sip:conf1@h").unwrap();
        assert_eq!(
            a.verify(
                &c,
                Algorithm::Md5,
                &Algorithm::Md5.ha1("alice", "convoke", "pw"),
                &elsewhere
            ),
            Err(Rejection::Invalid("digest uri is not the Request-URI"))
        );
        // The server's own URI (as SIPp signs) covers a conference on it, with or without port.
        let c = creds(Algorithm::Md5, &nonce, "pw", 2);
        let mut on_the_server = register();
        on_the_server.uri = crate::sip::SipUri::parse("sip:conf1@h:5060").unwrap();
        let ha1 = Algorithm::Md5.ha1("alice", "convoke", "pw");
        assert!(a.verify(&c, Algorithm::Md5, &ha1, &on_the_server).is_ok());
    }

    fn creds(alg: Algorithm, nonce: &str, pw: &str, nc: u32) -> Credentials {
        let ch = Challenge {
            realm: "convoke".into(),
            nonce: nonce.into(),
            algorithm: alg,
        };
        Credentials::parse(&authorize(&ch, "alice", pw, "REGISTER", "sip:h", nc, "cn")).unwrap()
    }

    #[test]
    fn accepts_good_and_rejects_replay() {
        let (a, nonce) = setup();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let c = creds(alg, &nonce, "pw", if alg == Algorithm::Md5 { 1 } else { 2 });
            let alg = a
                .check_nonce(&c, a.default_order(), SystemTime::now())
                .unwrap();
            a.verify(&c, alg, &alg.ha1("alice", "convoke", "pw"), &register())
                .unwrap();
        }
        let c = creds(Algorithm::Md5, &nonce, "pw", 2);
        assert_eq!(
            a.verify(
                &c,
                Algorithm::Md5,
                &Algorithm::Md5.ha1("alice", "convoke", "pw"),
                &register()
            ),
            Err(Rejection::Invalid("nonce count replayed"))
        );
    }

    #[test]
    fn nonces_of_one_second_differ() {
        let a = Authenticator::new("convoke", vec![Algorithm::Md5]);
        let now = SystemTime::now();
        assert_ne!(a.mint_nonce(now), a.mint_nonce(now));
        assert_eq!(a.mint_nonce(now).len(), NONCE_LEN);
    }

    #[test]
    fn algorithm_outside_the_allowed_set_is_refused() {
        let (a, nonce) = setup();
        let c = creds(Algorithm::Sha256, &nonce, "pw", 1);
        assert_eq!(
            a.check_nonce(&c, &[Algorithm::Md5], SystemTime::now()),
            Err(Rejection::Invalid("algorithm"))
        );
        assert_eq!(
            a.challenges(&[Algorithm::Md5], false, SystemTime::now())
                .len(),
            1
        );
    }

    #[test]
    fn wrong_password_forged_and_old_nonces() {
        let (a, nonce) = setup();
        let c = creds(Algorithm::Md5, &nonce, "wrong", 1);
        assert_eq!(
            a.verify(
                &c,
                Algorithm::Md5,
                &Algorithm::Md5.ha1("alice", "convoke", "pw"),
                &register()
            ),
            Err(Rejection::Invalid("response"))
        );
        let forged = creds(Algorithm::Md5, "0123456789abcdef0123456789abcdef", "pw", 1);
        assert_eq!(
            a.check_nonce(&forged, a.default_order(), SystemTime::now()),
            Err(Rejection::Stale)
        );
        let later = SystemTime::now() + NONCE_LIFETIME + Duration::from_secs(5);
        assert_eq!(
            a.check_nonce(&c, a.default_order(), later),
            Err(Rejection::Stale)
        );
    }
}
