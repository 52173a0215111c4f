//! Sockets and the task that drives the sans-IO transaction layer. Everything with I/O in the
//! signalling path lives here.

pub mod core;
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
}

/// The outbound side of every transport.
pub struct Transports {
    pub udp: Arc<UdpSocket>,
    connections: DashMap<u64, mpsc::UnboundedSender<Bytes>>,
    next_connection: AtomicU64,
}

impl Transports {
    pub fn new(udp: Arc<UdpSocket>) -> Self {
        Self {
            udp,
            connections: DashMap::new(),
            next_connection: AtomicU64::new(1),
        }
    }

    pub fn register_connection(&self, tx: mpsc::UnboundedSender<Bytes>) -> u64 {
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
                let sent = self
                    .connections
                    .get(&id)
                    .map(|c| c.send(data).is_ok())
                    .unwrap_or(false);
                if !sent {
                    tracing::debug!(%peer, "connection gone; message dropped");
                }
            }
            (_, None) => tracing::warn!(%peer, "no connection to send on"),
        }
    }
}
