//! The UDP listener: reads datagrams and hands them to the core.

use super::peer::Peer;
use super::Inbound;
use bytes::Bytes;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Above this many datagrams waiting for the core, new calls are refused at the door: a
/// quarter of the queue is some 20 ms of work at thousands of joins per second. Shedding early
/// keeps the answers to the calls let in well inside the 500 ms after which callers
/// retransmit (measured: a half-full queue before shedding let a 5 000/s overload turn into a
/// retransmission storm; a quarter held it).
fn high_water(queue: &mpsc::Sender<Inbound>) -> usize {
    queue.max_capacity() / 4
}

pub async fn run(
    socket: Arc<UdpSocket>,
    inbound: mpsc::Sender<Inbound>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut door = super::door::Door::default();
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, addr)) => {
                // The core is behind: a new call would only make every call later (and bring
                // retransmissions). It gets 503 + Retry-After here, statelessly, and what
                // belongs to calls already made (ACK, BYE, responses, retransmissions) goes on.
                let behind = inbound.max_capacity() - inbound.capacity() > high_water(&inbound);
                if let Some(busy) = door.check(&buf[..n], behind) {
                    metrics.shed.inc();
                    let _ = socket.try_send_to(&busy, addr);
                    continue;
                }
                let item = Inbound {
                    data: Bytes::copy_from_slice(&buf[..n]),
                    peer: Peer::udp(addr),
                };
                // A full queue means the core is overloaded: shed load here, not in memory.
                if inbound.try_send(item).is_err() {
                    metrics.sip_queue_full.inc();
                    tracing::debug!(%addr, "signalling queue full; datagram dropped");
                }
            }
            Err(e) => tracing::debug!(error = %e, "UDP receive error"),
        }
    }
}
