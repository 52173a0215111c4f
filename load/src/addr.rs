//! Participant addressing. Every simulated participant has its own loopback address
//! (`127.1.x.y`, all of 127/8 is local on Linux), so the server tells them apart by address as
//! it would real phones, while one socket per generator thread sends and receives for all of
//! them (`IP_PKTINFO` picks the source address per datagram and reports the destination).

use std::net::Ipv4Addr;

/// Most participants one run can address.
pub const MAX_PARTICIPANTS: usize = 1 << 16;

/// The address of participant `index`.
pub fn participant_ip(index: usize) -> Ipv4Addr {
    debug_assert!(index < MAX_PARTICIPANTS);
    Ipv4Addr::new(127, 1, (index >> 8) as u8, index as u8)
}

/// The participant an address belongs to, if it is one of ours.
pub fn participant_index(ip: Ipv4Addr) -> Option<usize> {
    let [a, b, c, d] = ip.octets();
    (a == 127 && b == 1).then_some((usize::from(c) << 8) | usize::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for i in [0, 1, 255, 256, 4097, MAX_PARTICIPANTS - 1] {
            assert_eq!(participant_index(participant_ip(i)), Some(i));
        }
        assert_eq!(participant_index(Ipv4Addr::LOCALHOST), None);
    }
}
