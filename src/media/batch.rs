//! Batched datagram I/O for the packet loop: `recvmmsg` fills up to [`BATCH`] buffers per
//! system call, `sendmmsg` sends a whole fan-out (one packet to many destinations) in one.
//!
//! Everything is allocated once per worker; a call touches no heap. The send side holds no
//! copies: it points into the receive buffers, so the caller flushes it before the next
//! receive (the contract of [`SendBatch::push`]).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per receive call.
pub const BATCH: usize = 32;
/// Largest datagram kept; longer ones are truncated by the kernel (and are not media).
pub const BUF: usize = 2048;
/// Messages per send call (a full receive batch fanned out to eight members takes four calls).
pub const SEND_BATCH: usize = 64;

/// Control-message space per datagram, in u64 words (aligned as `cmsghdr` needs): room for
/// the one `SO_RXQ_OVFL` message (a u32 after a 16-byte header) and a spare.
const CONTROL_WORDS: usize = 8;

/// Receive buffers and the headers `recvmmsg` fills.
pub struct RecvBatch {
    bufs: Box<[[u8; BUF]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    controls: Box<[[u64; CONTROL_WORDS]]>,
    len: usize,
    overflow: Option<u32>,
}

// SAFETY: the raw pointers inside the headers only ever point into the batch's own boxes and
// are rebuilt before each call; nothing is shared between threads.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        // SAFETY: all-zero is a valid value of these plain C structs.
        Self {
            bufs: vec![[0u8; BUF]; BATCH].into_boxed_slice(),
            addrs: vec![unsafe { zeroed::<libc::sockaddr_storage>() }; BATCH].into_boxed_slice(),
            iovs: vec![unsafe { zeroed::<libc::iovec>() }; BATCH].into_boxed_slice(),
            hdrs: vec![unsafe { zeroed::<libc::mmsghdr>() }; BATCH].into_boxed_slice(),
            controls: vec![[0u64; CONTROL_WORDS]; BATCH].into_boxed_slice(),
            len: 0,
            overflow: None,
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking; `WouldBlock` when there are none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; CONTROL_WORDS]>();
            h.msg_flags = 0;
        }
        // SAFETY: every header points at live buffers of the sizes given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.len = 0;
            return Err(io::Error::last_os_error());
        }
        self.len = n as usize;
        // The count is cumulative: the last datagram's is the newest.
        self.overflow = self
            .len
            .checked_sub(1)
            .and_then(|last| self.overflow_of(last));
        Ok(self.len)
    }

    /// How many datagrams the kernel has dropped on this socket because its receive buffer
    /// was full, as the last receive reported it (`SO_RXQ_OVFL`, counted since the socket was
    /// made; the kernel says nothing while it is zero or the option is off).
    pub fn overflow(&self) -> Option<u32> {
        self.overflow
    }

    fn overflow_of(&self, i: usize) -> Option<u32> {
        let hdr = &self.hdrs[i].msg_hdr;
        // SAFETY: the kernel filled `msg_controllen` bytes of this message's control buffer;
        // the CMSG macros stay inside it, and the data is read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_RXQ_OVFL
                {
                    return Some(std::ptr::read_unaligned(
                        libc::CMSG_DATA(cmsg).cast::<u32>(),
                    ));
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        None
    }

    /// The `i`th datagram of the last receive and its source (`None` for an address family
    /// other than IPv4/IPv6).
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.len {
            return None;
        }
        let n = (self.hdrs[i].msg_len as usize).min(BUF);
        Some((&self.bufs[i][..n], from_sockaddr(&self.addrs[i])?))
    }
}

/// Outgoing datagrams of one socket, gathered and sent with one `sendmmsg`.
pub struct SendBatch {
    addrs: Box<[libc::sockaddr_storage]>,
    lens: Box<[libc::socklen_t]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    len: usize,
}

// SAFETY: as for RecvBatch; the iovecs point into buffers the owner keeps alive until flush.
unsafe impl Send for SendBatch {}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    pub fn new() -> Self {
        // SAFETY: all-zero is a valid value of these plain C structs.
        Self {
            addrs: vec![unsafe { zeroed::<libc::sockaddr_storage>() }; SEND_BATCH]
                .into_boxed_slice(),
            lens: vec![0; SEND_BATCH].into_boxed_slice(),
            iovs: vec![unsafe { zeroed::<libc::iovec>() }; SEND_BATCH].into_boxed_slice(),
            hdrs: vec![unsafe { zeroed::<libc::mmsghdr>() }; SEND_BATCH].into_boxed_slice(),
            len: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len == SEND_BATCH
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `data` for `dest`. The batch keeps a pointer to `data`, not a copy.
    ///
    /// # Safety
    /// `data` must stay alive and unchanged until the next [`SendBatch::flush`].
    pub unsafe fn push(&mut self, data: &[u8], dest: SocketAddr) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.len;
        self.lens[i] = to_sockaddr(dest, &mut self.addrs[i]);
        self.iovs[i] = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        self.len += 1;
        true
    }

    /// Sends everything queued; returns how many went out. A full socket buffer drops the rest
    /// (real-time media is not queued), as does any other error.
    pub fn flush(&mut self, fd: RawFd) -> usize {
        let total = self.len;
        for i in 0..total {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.lens[i];
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut sent = 0;
        while sent < total {
            // SAFETY: headers [sent, total) point at live addresses and (by push's contract)
            // live payloads.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[sent..].as_mut_ptr(),
                    (total - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                // EAGAIN: drop. Other errors (an unreachable destination reported by ICMP)
                // concern one datagram: skip it and go on.
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                sent += 1;
                continue;
            }
            sent += n as usize;
        }
        self.len = 0;
        sent
    }
}

/// Writes `addr` into `out`; returns the length to pass to the kernel.
pub fn to_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads an IPv4 or IPv6 address the kernel wrote.
pub fn from_sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 =
                unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn sockaddr_round_trip() {
        for a in ["127.0.0.1:5004", "[::1]:6000", "10.1.2.3:65535"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut s = unsafe { zeroed() };
            to_sockaddr(a, &mut s);
            assert_eq!(from_sockaddr(&s), Some(a));
        }
    }

    #[test]
    fn fan_out_in_one_call_then_batch_receive() {
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx: Vec<_> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut out = SendBatch::new();
        let payloads = [b"one".as_slice(), b"two", b"three"];
        for (r, p) in rx.iter().zip(payloads) {
            // SAFETY: the payloads are statics.
            assert!(unsafe { out.push(p, r.local_addr().unwrap()) });
        }
        // Twice to the first receiver: it must get both in one recvmmsg.
        unsafe { out.push(b"again", rx[0].local_addr().unwrap()) };
        assert_eq!(out.flush(tx.as_raw_fd()), 4);
        assert!(out.is_empty());
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(rx[0].as_raw_fd()).unwrap(), 2);
        assert_eq!(batch.get(0), Some((&b"one"[..], tx.local_addr().unwrap())));
        assert_eq!(batch.get(1).unwrap().0, b"again");
        assert_eq!(batch.get(2), None);
        assert_eq!(batch.recv(rx[2].as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.get(0).unwrap().0, b"three");
        assert_eq!(
            batch.recv(rx[2].as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn the_kernel_reports_what_a_full_receive_buffer_dropped() {
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        // The smallest buffer the kernel allows, and the count turned on.
        crate::media::socket::SocketBuffers {
            receive: 1,
            send: 64 * 1024,
        }
        .apply(&rx);
        let to = rx.local_addr().unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(
            batch.recv(rx.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(batch.overflow(), None);
        for _ in 0..500 {
            tx.send_to(&[0u8; 200], to).unwrap();
        }
        let mut received = 0;
        while let Ok(n) = batch.recv(rx.as_raw_fd()) {
            received += n;
        }
        // The count rides on datagrams queued after the drops: those in the full buffer
        // came before.
        // One at a time, each read before the next: a buffer this small takes only a few.
        let mut overflow = None;
        for _ in 0..5 {
            tx.send_to(&[0u8; 200], to).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
            while let Ok(n) = batch.recv(rx.as_raw_fd()) {
                received += n;
                overflow = batch.overflow().or(overflow);
            }
        }
        let dropped = overflow.expect("the kernel reports its drops") as usize;
        assert!(
            received < 505 && dropped > 0,
            "{received} received, {dropped} dropped"
        );
        assert_eq!(received + dropped, 505);
    }
}
