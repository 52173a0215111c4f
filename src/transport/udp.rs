//! The UDP listener: reads datagrams and hands them to the core.

use super::peer::Peer;
use super::Inbound;
use bytes::Bytes;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

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
                if let Some(busy) = door.check(
                    &buf[..n],
                    super::door::behind(
                        inbound.max_capacity() - inbound.capacity(),
                        inbound.max_capacity(),
                        delay.get(),
                    ),
                ) {
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
