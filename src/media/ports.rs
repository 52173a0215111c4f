//! Hands out blocks of media ports. Each conference gets four consecutive ports (audio RTP,
//! audio RTCP, video RTP, video RTCP), chosen at random among the free blocks of the configured
//! ranges. A released block is quarantined for a while before it is handed out again, so late
//! packets of an ended conference never reach a new one.

use super::socket::SocketBuffers;
use crate::config::PortSpec;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const BLOCK: u16 = 4;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no free media ports ({blocks} blocks configured, all in use or quarantined)")]
    Exhausted { blocks: usize },
}

/// The four sockets of one conference, bound.
#[derive(Debug)]
pub struct MediaSockets {
    pub base: u16,
    /// audio RTP, audio RTCP, video RTP, video RTCP.
    pub sockets: [UdpSocket; 4],
}

#[derive(Default)]
struct Usage {
    used: HashSet<u16>,
    released: HashMap<u16, Instant>,
}

pub struct PortPool {
    ip: IpAddr,
    buffers: SocketBuffers,
    bases: Vec<u16>,
    quarantine: Duration,
    usage: Mutex<Usage>,
}

impl PortPool {
    pub fn new(ip: IpAddr, spec: &PortSpec, quarantine: Duration, buffers: SocketBuffers) -> Self {
        Self {
            ip,
            buffers,
            bases: spec.block_bases(BLOCK),
            quarantine,
            usage: Mutex::new(Usage::default()),
        }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds a random free block. Ports held by other programs are skipped.
    pub fn allocate(&self) -> Result<MediaSockets, PortError> {
        let exhausted = PortError::Exhausted {
            blocks: self.bases.len(),
        };
        if self.bases.is_empty() {
            return Err(exhausted);
        }
        let start = rand::thread_rng().gen_range(0..self.bases.len());
        for i in 0..self.bases.len() {
            let base = self.bases[(start + i) % self.bases.len()];
            {
                let mut usage = self.usage();
                let now = Instant::now();
                if usage
                    .released
                    .get(&base)
                    .is_some_and(|t| now.duration_since(*t) < self.quarantine)
                {
                    continue;
                }
                if !usage.used.insert(base) {
                    continue;
                }
                usage.released.remove(&base);
            }
            match self.bind_block(base) {
                Some(sockets) => return Ok(MediaSockets { base, sockets }),
                None => {
                    // Held by another program: free it without quarantine.
                    self.usage().used.remove(&base);
                }
            }
        }
        Err(exhausted)
    }

    fn bind_block(&self, base: u16) -> Option<[UdpSocket; 4]> {
        let bind = |p: u16| {
            let s = UdpSocket::bind(SocketAddr::new(self.ip, p)).ok()?;
            s.set_nonblocking(true).ok()?;
            self.buffers.apply(&s);
            Some(s)
        };
        Some([
            bind(base)?,
            bind(base + 1)?,
            bind(base + 2)?,
            bind(base + 3)?,
        ])
    }

    /// Returns a block (its sockets are closed); it is quarantined before reuse.
    pub fn release(&self, base: u16) {
        let mut usage = self.usage();
        usage.used.remove(&base);
        usage.released.insert(base, Instant::now());
    }

    pub fn in_use(&self) -> usize {
        self.usage().used.len()
    }

    pub fn blocks(&self) -> usize {
        self.bases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(spec: &str, quarantine: Duration) -> PortPool {
        PortPool::new(
            "127.0.0.1".parse().unwrap(),
            &spec.parse().unwrap(),
            quarantine,
            SocketBuffers {
                receive: 256 * 1024,
                send: 256 * 1024,
            },
        )
    }

    #[test]
    fn distinct_blocks_until_exhausted() {
        let pool = pool("41000-41011", Duration::ZERO);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let c = pool.allocate().unwrap();
        let mut bases = vec![a.base, b.base, c.base];
        bases.sort();
        assert_eq!(bases, vec![41000, 41004, 41008]);
        assert!(pool.allocate().is_err());
        let freed = b.base;
        pool.release(freed);
        drop(b);
        assert_eq!(pool.allocate().unwrap().base, freed);
    }

    #[test]
    fn released_blocks_are_quarantined() {
        let pool = pool("41100-41103,41200-41203", Duration::from_secs(60));
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let freed = a.base;
        drop(a);
        pool.release(freed);
        assert!(
            pool.allocate().is_err(),
            "the only free block is in quarantine"
        );
        drop(b);
    }

    #[test]
    fn lists_of_ranges_and_ports() {
        let pool = pool("41300-41303,41400,41401,41402,41403,41500", Duration::ZERO);
        assert_eq!(pool.blocks(), 2, "41500 alone cannot hold a block");
    }
}
