//! Media socket options: buffers sized on purpose, and the kernel's count of datagrams it
//! dropped because the receive buffer was full (`SO_RXQ_OVFL`).
//!
//! The kernel's default receive buffer (~208 KiB) holds about 10 ms of a busy conference's
//! input: a worker held up longer than that (a page fault storm, a stop of the process, a busy
//! core) loses packets. The buffer is only memory the kernel may use while packets wait, so a
//! generous size costs nothing while the worker keeps up.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The SIP UDP socket's: a burst of joins must wait in the kernel, not be dropped there, while
/// the core catches up (a retransmission would only come 500 ms later).
pub const SIP_SOCKET: SocketBuffers = SocketBuffers {
    receive: 8 << 20,
    send: 4 << 20,
};

/// Wanted sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketBuffers {
    pub receive: usize,
    pub send: usize,
}

/// Logged once per process when the kernel limits win over the configured sizes.
static CAPPED_WARNED: AtomicBool = AtomicBool::new(false);

impl SocketBuffers {
    /// Sets both buffers on `socket` and turns on the overflow count. Where the size is above
    /// the kernel's limit (net.core.rmem_max/wmem_max), the privileged `*BUFFORCE` options are
    /// tried (root or CAP_NET_ADMIN); without them the kernel's cap stays, with one warning.
    pub fn apply(&self, socket: &impl AsFd) {
        let sock = socket2::SockRef::from(socket);
        let receive = sock.set_recv_buffer_size(self.receive).is_ok()
            && sock.recv_buffer_size().is_ok_and(|got| got >= self.receive)
            || force(socket, libc::SO_RCVBUFFORCE, self.receive);
        let send = sock.set_send_buffer_size(self.send).is_ok()
            && sock.send_buffer_size().is_ok_and(|got| got >= self.send)
            || force(socket, libc::SO_SNDBUFFORCE, self.send);
        // The flag is only set when the sizes did not fit.
        if !(receive && send || CAPPED_WARNED.swap(true, Ordering::Relaxed)) {
            tracing::warn!(
                wanted_receive = self.receive,
                got_receive = sock.recv_buffer_size().unwrap_or(0),
                wanted_send = self.send,
                got_send = sock.send_buffer_size().unwrap_or(0),
                "media socket buffers capped by the kernel: raise net.core.rmem_max and \
                 net.core.wmem_max, or run with CAP_NET_ADMIN"
            );
        }
        if let Err(e) = set_int(socket, libc::SO_RXQ_OVFL, 1) {
            tracing::debug!(error = %e, "SO_RXQ_OVFL unavailable: socket overflows are not counted");
        }
    }
}

/// `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`: true if the kernel took the size. The kernel doubles
/// the value it is given (for its bookkeeping), as for the plain options.
fn force(socket: &impl AsFd, option: libc::c_int, size: usize) -> bool {
    set_int(socket, option, i32::try_from(size).unwrap_or(i32::MAX)).is_ok()
}

fn set_int(socket: &impl AsFd, option: libc::c_int, value: i32) -> std::io::Result<()> {
    // SAFETY: a valid socket and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::UdpSocket;

    #[test]
    fn buffers_are_at_least_what_was_asked_when_the_kernel_allows() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let small = SocketBuffers {
            receive: 64 * 1024,
            send: 32 * 1024,
        };
        small.apply(&socket);
        let sock = socket2::SockRef::from(&socket);
        // Below every default limit: the plain options suffice (the kernel reports double).
        assert!(sock.recv_buffer_size().unwrap() >= small.receive);
        assert!(sock.send_buffer_size().unwrap() >= small.send);
    }
}
