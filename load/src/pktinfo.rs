//! One UDP socket that speaks for many loopback addresses: `sendmmsg` with an `IP_PKTINFO`
//! control message per datagram chooses its source address, `recvmmsg` with `IP_PKTINFO`
//! reports each datagram's destination address. Buffers are allocated once.

use convoke::media::batch::{from_sockaddr, to_sockaddr};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

pub const BATCH: usize = 64;
const BUF: usize = 2048;
/// CMSG_SPACE(sizeof(struct in_pktinfo)) on 64-bit Linux, rounded up generously.
const CONTROL: usize = 64;

pub struct PktinfoSocket {
    socket: UdpSocket,
    bufs: Box<[[u8; BUF]]>,
    lens: Box<[usize]>,
    names: Box<[libc::sockaddr_storage]>,
    name_lens: Box<[libc::socklen_t]>,
    controls: Box<[[u8; CONTROL]]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    queued: usize,
}

// SAFETY: the raw pointers in the headers point only into the socket's own boxes and are
// rebuilt before every call; the socket is used by one thread at a time.
unsafe impl Send for PktinfoSocket {}

/// One received datagram.
pub struct Datagram<'a> {
    pub data: &'a [u8],
    /// Where it came from (the generator attributes by destination and SSRC instead).
    #[allow(dead_code)]
    pub source: SocketAddr,
    /// The address it was sent to (one of ours).
    pub destination: Option<Ipv4Addr>,
}

impl PktinfoSocket {
    /// Binds `0.0.0.0:port` with large buffers and `IP_PKTINFO`.
    pub fn bind(port: u16) -> io::Result<Self> {
        let socket = UdpSocket::bind(("0.0.0.0", port))?;
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        large_buffers(fd);
        // SAFETY: all-zero is a valid value of these plain C structs.
        let zero_name = unsafe { zeroed::<libc::sockaddr_storage>() };
        let zero_iov = unsafe { zeroed::<libc::iovec>() };
        let zero_hdr = unsafe { zeroed::<libc::mmsghdr>() };
        Ok(Self {
            socket,
            bufs: vec![[0u8; BUF]; BATCH].into_boxed_slice(),
            lens: vec![0; BATCH].into_boxed_slice(),
            names: vec![zero_name; BATCH].into_boxed_slice(),
            name_lens: vec![0; BATCH].into_boxed_slice(),
            controls: vec![[0u8; CONTROL]; BATCH].into_boxed_slice(),
            iovs: vec![zero_iov; BATCH].into_boxed_slice(),
            hdrs: vec![zero_hdr; BATCH].into_boxed_slice(),
            queued: 0,
        })
    }

    pub fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    /// A buffer for the next outgoing datagram, from `source` to `dest`; `None` when the batch
    /// is full (flush first). The caller writes the payload and gives its length to `commit`.
    pub fn next_buffer(&mut self) -> Option<&mut [u8]> {
        (self.queued < BATCH).then(|| &mut self.bufs[self.queued][..])
    }

    pub fn commit(&mut self, len: usize, source: Ipv4Addr, dest: SocketAddr) {
        let i = self.queued;
        self.lens[i] = len.min(BUF);
        self.name_lens[i] = to_sockaddr(dest, &mut self.names[i]);
        let control = &mut self.controls[i];
        control.fill(0);
        // SAFETY: the control buffer is large and aligned enough for one cmsghdr with an
        // in_pktinfo; the pointers written are rebuilt in `flush`.
        unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::IPPROTO_IP;
            (*cmsg).cmsg_type = libc::IP_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
            let info = libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>();
            info.write_unaligned(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(source).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            });
        }
        self.queued += 1;
    }

    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Sends the queued datagrams; returns how many the kernel took (the rest are dropped, as a
    /// real phone's would be on a full socket buffer).
    pub fn flush(&mut self) -> usize {
        let total = self.queued;
        for i in 0..total {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.name_lens[i];
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            // SAFETY: a pure size computation.
            h.msg_controllen =
                unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) } as _;
            h.msg_flags = 0;
        }
        let mut sent = 0;
        while sent < total {
            // SAFETY: headers [sent, total) point into our own live buffers.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd(),
                    self.hdrs[sent..].as_mut_ptr(),
                    (total - sent) as u32,
                    0,
                )
            };
            if n <= 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                sent += 1;
                continue;
            }
            sent += n as usize;
        }
        self.queued = 0;
        sent
    }

    /// Receives up to [`BATCH`] datagrams without blocking, calling `each` for every one.
    /// Returns how many arrived (0 when none were waiting).
    pub fn recv(&mut self, mut each: impl FnMut(Datagram<'_>)) -> usize {
        debug_assert_eq!(
            self.queued, 0,
            "flush before receiving into the shared buffers"
        );
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL as _;
            h.msg_flags = 0;
        }
        // SAFETY: every header points at live buffers of the sizes given.
        let n = unsafe {
            libc::recvmmsg(
                self.fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return 0;
        }
        for i in 0..n as usize {
            let Some(source) = from_sockaddr(&self.names[i]) else {
                continue;
            };
            let len = (self.hdrs[i].msg_len as usize).min(BUF);
            let destination = pktinfo_destination(&self.hdrs[i].msg_hdr);
            each(Datagram {
                data: &self.bufs[i][..len],
                source,
                destination,
            });
        }
        n as usize
    }

    /// Waits up to `timeout` for something to read.
    pub fn wait_readable(&self, timeout: std::time::Duration) {
        let mut pfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: one valid pollfd; no signal mask change.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }
}

fn pktinfo_destination(h: &libc::msghdr) -> Option<Ipv4Addr> {
    // SAFETY: walking the control messages the kernel wrote, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(h);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                let info = libc::CMSG_DATA(cmsg)
                    .cast::<libc::in_pktinfo>()
                    .read_unaligned();
                return Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
            }
            cmsg = libc::CMSG_NXTHDR(h, cmsg);
        }
    }
    None
}

/// 8 MiB socket buffers, so that the generator (and the reference forwarder) do not drop
/// bursts in their one socket. FORCE needs CAP_NET_ADMIN; the plain option is capped by
/// net.core.rmem_max / wmem_max.
pub fn large_buffers(fd: i32) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if set_int(fd, libc::SOL_SOCKET, force, 8 << 20).is_err() {
            let _ = set_int(fd, libc::SOL_SOCKET, plain, 8 << 20);
        }
    }
}

fn set_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a plain int option.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::participant_ip;

    #[test]
    fn sends_from_and_receives_for_many_addresses() {
        let mut a = PktinfoSocket::bind(0).unwrap();
        let port = a.socket.local_addr().unwrap().port();
        let mut b = PktinfoSocket::bind(0).unwrap();
        let b_port = b.socket.local_addr().unwrap().port();
        for i in 0..3 {
            let buf = a.next_buffer().unwrap();
            buf[0] = i as u8;
            a.commit(
                1,
                participant_ip(i),
                SocketAddr::from((participant_ip(10 + i), b_port)),
            );
        }
        assert_eq!(a.flush(), 3);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut got = Vec::new();
        b.recv(|d| got.push((d.data[0], d.source, d.destination)));
        assert_eq!(got.len(), 3);
        for (i, (byte, source, dest)) in got.into_iter().enumerate() {
            assert_eq!(byte as usize, i);
            assert_eq!(source, SocketAddr::from((participant_ip(i), port)));
            assert_eq!(dest, Some(participant_ip(10 + i)));
        }
    }
}
