//! The standard media port (seed 002's "standard path"): one UDP port shared by every
//! conference, always open. A participant whose media cannot (yet) use its conference's
//! dedicated port sends here; packets are told apart by source address and handed to that
//! conference's worker, which forwards them like its own and answers such members from this
//! port.
//!
//! This is the fallback path and it is built for being there, not for speed: one receive per
//! packet, a routing-table lookup and a copy per packet into the worker's channel. Each worker
//! accepts at most [`BACKLOG`] relayed packets in flight, so a flood here cannot grow memory.

use super::worker::{Control, WorkerHandle};
use bytes::Bytes;
use dashmap::DashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Relayed packets a worker may have queued before the relay drops more for it.
pub const BACKLOG: usize = 1024;

/// Where a source's packets go: a worker's control channel and its backlog counter.
#[derive(Clone)]
pub(super) struct RelayTarget {
    pub control: mpsc::UnboundedSender<Control>,
    pub backlog: Arc<AtomicUsize>,
}

pub struct StandardPort {
    socket: UdpSocket,
    routes: DashMap<SocketAddr, RelayTarget>,
    /// Packets from unknown sources, or dropped for a full backlog.
    pub dropped: AtomicU64,
    pub relayed: AtomicU64,
}

impl StandardPort {
    /// Binds the port and starts its receive loop on `runtime` (a media thread).
    pub fn start(
        addr: SocketAddr,
        runtime: &tokio::runtime::Handle,
        buffers: super::socket::SocketBuffers,
    ) -> std::io::Result<Arc<Self>> {
        let std_socket = std::net::UdpSocket::bind(addr)?;
        std_socket.set_nonblocking(true)?;
        buffers.apply(&std_socket);
        let _enter = runtime.enter();
        let port = Arc::new(Self {
            socket: UdpSocket::from_std(std_socket)?,
            routes: DashMap::new(),
            dropped: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
        });
        runtime.spawn(port.clone().receive());
        Ok(port)
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().map_or(0, |a| a.port())
    }

    /// Workers send to standard-path members through this socket.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Sends packets from `sources` to `worker`. A source another conference already routes
    /// is left to it: an SDP address is only a claim, and one member's claim must not take
    /// another's media. Returns the sources refused.
    pub fn route(&self, sources: &[SocketAddr], worker: &WorkerHandle) -> Vec<SocketAddr> {
        let target = worker.relay_target();
        let mut refused = Vec::new();
        for s in sources {
            match self.routes.entry(*s) {
                dashmap::Entry::Occupied(e) if !e.get().control.same_channel(&target.control) => {
                    refused.push(*s);
                }
                dashmap::Entry::Occupied(_) => {}
                dashmap::Entry::Vacant(e) => {
                    e.insert(target.clone());
                }
            }
        }
        refused
    }

    /// Stops routing `sources` to `worker` (routes of other workers stay).
    pub fn unroute(&self, sources: &[SocketAddr], worker: &WorkerHandle) {
        let target = worker.relay_target();
        for s in sources {
            self.routes
                .remove_if(s, |_, t| t.control.same_channel(&target.control));
        }
    }

    async fn receive(self: Arc<Self>) {
        let mut buf = [0u8; super::batch::BUF];
        loop {
            let Ok((n, src)) = self.socket.recv_from(&mut buf).await else {
                continue;
            };
            let target = self.routes.get(&src).map(|t| t.clone());
            let Some(target) = target else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if target.backlog.fetch_add(1, Ordering::Relaxed) >= BACKLOG {
                target.backlog.fetch_sub(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let packet = Bytes::copy_from_slice(&buf[..n]);
            if target.control.send(Control::Relayed(packet, src)).is_err() {
                target.backlog.fetch_sub(1, Ordering::Relaxed);
            } else {
                self.relayed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
