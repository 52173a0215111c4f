//! Sockets and the task that drives the sans-IO transaction layer. Everything with I/O in the
//! signalling path lives here.

pub mod core;
pub mod door;
pub mod peer;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod ws;

use bytes::Bytes;
use dashmap::DashMap;
use peer::{Peer, Transport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A datagram or stream frame that arrived, still unparsed.
pub struct Inbound {
    pub data: Bytes,
    pub peer: Peer,
    /// When the transport read it: the core measures how long it waited (see `door`).
    pub at: std::time::Instant,
}

/// The outbound side of every transport.
pub struct Transports {
    pub udp: Arc<UdpSocket>,
    connections: DashMap<u64, mpsc::Sender<Bytes>>,
    next_connection: AtomicU64,
}

/// Messages a connection may have waiting to be written.
pub const OUTBOUND_QUEUE: usize = 256;

impl Transports {
    pub fn new(udp: Arc<UdpSocket>) -> Self {
        Self {
            udp,
            connections: DashMap::new(),
            next_connection: AtomicU64::new(1),
        }
    }

    /// A connection's outbound queue: messages waiting for the peer to read them. A peer that
    /// lets it fill is not reading; its connection is closed rather than the queue grown.
    pub fn outbound_queue() -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        mpsc::channel(OUTBOUND_QUEUE)
    }

    pub fn register_connection(&self, tx: mpsc::Sender<Bytes>) -> u64 {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.connections.insert(id, tx);
        id
    }

    pub fn close_connection(&self, id: u64) {
        self.connections.remove(&id);
    }

    /// Whether the connection is still there (registrations over it stay valid only then).
    pub fn is_open(&self, id: u64) -> bool {
        self.connections.contains_key(&id)
    }

    /// Sends without waiting. UDP sends that would block are dropped (SIP retransmits).
    pub fn send(&self, peer: Peer, data: Bytes) {
        match (peer.transport, peer.connection) {
            (Transport::Udp, _) => {
                if let Err(e) = self.udp.try_send_to(&data, peer.addr) {
                    tracing::debug!(%peer, error = %e, "UDP send failed");
                }
            }
            (_, Some(id)) => {
                let sent = self.connections.get(&id).map(|c| c.try_send(data));
                match sent {
                    Some(Ok(())) => {}
                    Some(Err(mpsc::error::TrySendError::Full(_))) => {
                        // Dropping the queue's last sender ends the connection's tasks.
                        self.connections.remove(&id);
                        tracing::info!(%peer, "peer does not read: connection closed");
                    }
                    _ => tracing::debug!(%peer, "connection gone; message dropped"),
                }
            }
            (_, None) => tracing::warn!(%peer, "no connection to send on"),
        }
    }
}

/// Connections one address may hold open at once, per listener (an office behind one NAT has
/// many phones and browsers).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;

/// Open connections per remote address; an entry lives as long as its count is above zero.
#[derive(Default)]
pub struct ConnectionsPerAddress(DashMap<std::net::IpAddr, usize>);

impl ConnectionsPerAddress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts a new connection from `ip`, or refuses it at [`MAX_CONNECTIONS_PER_ADDRESS`].
    pub fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let mut n = self.0.entry(ip).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot(self.clone(), ip))
    }
}

/// One counted connection; dropping it uncounts it.
pub struct AddressSlot(Arc<ConnectionsPerAddress>, std::net::IpAddr);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.0 .0.remove_if_mut(&self.1, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}
