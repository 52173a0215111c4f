//! The UDP listener: reads datagrams and hands them to the core.

use super::peer::Peer;
use super::Inbound;
use bytes::Bytes;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The core is behind when what it takes from its queue has waited longer than this (and
/// some is still waiting), or when the queue is half full whatever the delay. 100 ms
/// leaves the calls let in well inside the 500 ms after which callers retransmit, while a
/// passing hiccup of the core does not refuse anyone.
const MAX_QUEUE_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

fn behind(queue: &mpsc::Sender<Inbound>, delay: &crate::transport::door::QueueDelay) -> bool {
    let waiting = queue.max_capacity() - queue.capacity();
    waiting > queue.max_capacity() / 2
        || (waiting > queue.max_capacity() / 32 && delay.get() > MAX_QUEUE_DELAY)
}

pub async fn run(
    socket: Arc<UdpSocket>,
    inbound: mpsc::Sender<Inbound>,
    metrics: Arc<crate::metrics::Metrics>,
    delay: Arc<crate::transport::door::QueueDelay>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut door = super::door::Door::default();
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, addr)) => {
                // The core is behind: a new call would only make every call later (and bring
                // retransmissions). It gets 503 + Retry-After here, statelessly, and what
                // belongs to calls already made (ACK, BYE, responses, retransmissions) goes on.
                if let Some(busy) = door.check(&buf[..n], behind(&inbound, &delay)) {
                    metrics.shed.inc();
                    let _ = socket.try_send_to(&busy, addr);
                    continue;
                }
                let item = Inbound {
                    data: Bytes::copy_from_slice(&buf[..n]),
                    peer: Peer::udp(addr),
                    at: std::time::Instant::now(),
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
