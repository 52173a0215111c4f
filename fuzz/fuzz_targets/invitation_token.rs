//! Invitation tokens as they arrive in a join (`;token=` or `X-Conference-Token`): checking one
//! never panics, and nothing but a token the key signed is accepted.
#![no_main]
use convoke::invitation::Invitations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let invitations = Invitations::new(b"fuzzing key");
    if let Some(invitation) = invitations.check("conf", token, 0) {
        // Accepted: it must be exactly what the key would have signed.
        let expires = token
            .split('.')
            .next()
            .and_then(|e| u64::from_str_radix(e, 16).ok())
            .expect("an accepted token has an expiry");
        assert_eq!(
            invitations.token("conf", &invitation.user, expires),
            token.trim(),
            "a forged token was accepted"
        );
    }
});
