//! The media threads: a fixed number of OS threads, each running a single-threaded tokio
//! runtime, apart from the signalling runtime. A new worker goes to the next thread in turn, so
//! conferences spread evenly and each conference's packet loop stays on one thread (no work
//! stealing, no cross-thread wake-ups on the packet path).

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::{Builder, Handle};

pub struct MediaThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl MediaThreads {
    /// Starts `count` media threads; they run for the life of the process.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            std::thread::Builder::new()
                .name(format!("convoke-media-{i}"))
                .spawn(move || {
                    raise_priority();
                    runtime.block_on(std::future::pending::<()>())
                })?;
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
        })
    }

    /// The thread the next worker runs on.
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

/// Media threads run ahead of signalling when both want the same core: a packet waits for no
/// housekeeping tick. Needs CAP_SYS_NICE (root); without it the threads keep the default
/// priority and the server says so once per thread.
fn raise_priority() {
    // SAFETY: gettid and setpriority on the calling thread have no memory effects.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, MEDIA_NICE)
    };
    if result != 0 {
        tracing::info!(
            error = %std::io::Error::last_os_error(),
            "media thread keeps the default priority"
        );
    }
}

/// Nice value of the media threads (signalling stays at 0).
const MEDIA_NICE: libc::c_int = -10;
