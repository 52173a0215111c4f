//! Random identifiers: conference IDs, PINs, tags, branches and Call-IDs, all from the OS RNG.

use rand::rngs::OsRng;
use rand::Rng;

/// Lower-case letters and digits without look-alikes (0/o, 1/l): URI-safe and easy to read out.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

pub fn token(len: usize) -> String {
    (0..len)
        .map(|_| ALPHABET[OsRng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// 10 symbols of 5 bits: 2^50 possibilities, so IDs cannot be guessed by scanning.
pub fn conference_id() -> String {
    token(10)
}

/// A 6-digit access code.
pub fn pin() -> String {
    format!("{:06}", OsRng.gen_range(0..1_000_000))
}

pub fn tag() -> String {
    token(12)
}

/// A branch with the RFC 3261 magic cookie.
pub fn branch() -> String {
    format!("{}{}", crate::sip::via::BRANCH_COOKIE, token(16))
}

pub fn call_id() -> String {
    token(24)
}

/// True if `s` could be a conference ID we issued.
pub fn looks_like_conference_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = conference_id();
        assert!(looks_like_conference_id(&id));
        assert_ne!(id, conference_id());
        assert_eq!(pin().len(), 6);
        assert!(branch().starts_with("z9hG4bK"));
    }
}
