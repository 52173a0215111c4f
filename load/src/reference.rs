//! The reference forwarder the benchmarks compare convoke with: one socket, `recvmmsg` of 32,
//! one `sendmmsg` per batch, and no conference logic at all. A participant is known by its
//! source address (see [`crate::addr`]); its packets go to every other participant of its group
//! whose address has been seen. It uses convoke's own batch I/O, so the comparison measures
//! what convoke adds (signalling-driven rosters, latching, statistics, RTCP routing, a task per
//! conference), not a different way of calling the kernel.

use crate::addr::{participant_index, MAX_PARTICIPANTS};
use convoke::media::batch::{RecvBatch, SendBatch};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

pub fn run(listen: SocketAddr, group: usize) -> std::io::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    let fd = socket.as_raw_fd();
    // One socket carries every conference here, where convoke has four per conference: give it
    // the room all of those would have.
    crate::pktinfo::large_buffers(fd);
    let mut learned: Vec<Option<SocketAddr>> = vec![None; MAX_PARTICIPANTS];
    let mut batch = RecvBatch::new();
    let mut out = SendBatch::new();
    let group = group.max(1);
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, -1) };
        let Ok(n) = batch.recv(fd) else { continue };
        for i in 0..n {
            let Some((packet, src)) = batch.get(i) else {
                continue;
            };
            let SocketAddr::V4(v4) = src else { continue };
            let Some(me) = participant_index(*v4.ip()) else {
                continue;
            };
            learned[me] = Some(src);
            let first = me / group * group;
            let last = (first + group).min(MAX_PARTICIPANTS);
            for (other, dest) in learned[first..last].iter().enumerate() {
                if first + other == me {
                    continue;
                }
                if let Some(dest) = *dest {
                    if out.is_full() {
                        out.flush(fd);
                    }
                    // SAFETY: `packet` lives in `batch`, which is not reused before the flush.
                    unsafe { out.push(packet, dest) };
                }
            }
        }
        out.flush(fd);
    }
}
