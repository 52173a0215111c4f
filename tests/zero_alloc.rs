//! The media fast path allocates nothing per packet: a real worker (task isolation) on loopback
//! sockets forwards 20 000 packets between two members while a counting global allocator
//! watches the whole process.

use convoke::config::PortSpec;
use convoke::media::{Isolation, MemberConfig, PortPool, StreamConfig, WorkerHandle};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn member(id: u64, rtp: &UdpSocket) -> MemberConfig {
    let addr = rtp.local_addr().unwrap();
    MemberConfig {
        id,
        signalling_ip: addr.ip(),
        streams: [
            Some(StreamConfig {
                rtp: Some(addr),
                rtcp: Some(addr),
                rtcp_mux: true,
                send: true,
                clock_rate: 8000,
            }),
            None,
        ],
        via_standard: false,
        audio: None,
    }
}

#[test]
fn forwarding_allocates_nothing_per_packet() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let base = 40_000 + (std::process::id() % 2000) as u16 * 4;
    let spec: PortSpec = format!("{base}-{}", base + 399).parse().unwrap();
    let pool = Arc::new(PortPool::new(
        "127.0.0.1".parse().unwrap(),
        &spec,
        Duration::ZERO,
    ));
    let (failed, _failures) = tokio::sync::mpsc::unbounded_channel();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let worker = rt.block_on(async {
        let w = WorkerHandle::spawn(
            pool.allocate().unwrap(),
            pool.clone(),
            failed,
            Isolation::Task,
            None,
        )
        .unwrap();
        w.assign("zeroalloc");
        w.upsert(member(1, &a)).unwrap().await.unwrap();
        w.upsert(member(2, &b)).unwrap().await.unwrap();
        w
    });
    let to = SocketAddr::from(([127, 0, 0, 1], worker.audio_port));
    let mut packet = [0u8; 172];
    packet[0] = 0x80;
    packet[8..12].copy_from_slice(&7u32.to_be_bytes());
    let mut buf = [0u8; 2048];
    // Warm up: first packets latch addresses and grow nothing further.
    for _ in 0..1_000 {
        a.send_to(&packet, to).unwrap();
        b.recv_from(&mut buf).unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let n = 20_000u64;
    for _ in 0..n {
        a.send_to(&packet, to).unwrap();
        b.recv_from(&mut buf).expect("forwarded");
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    eprintln!("{allocations} allocations in the whole process while forwarding {n} packets");
    // The runtime may allocate once in a while (measured: 1 in 20 000 packets); per packet it
    // must be nothing.
    assert!(
        allocations <= 10,
        "{allocations} allocations for {n} packets"
    );
    drop(worker);
    rt.shutdown_timeout(Duration::from_secs(1));
}
