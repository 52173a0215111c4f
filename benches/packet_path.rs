//! The per-packet path of a conference worker, piece by piece: classify the datagram (RTP or
//! RTCP, SSRC, feedback target), attribute it to a member (the roster scan), update the
//! receive statistics, and send one batch's fan-out (32 packets to 4 members) with `sendmmsg`
//! against the same 128 datagrams sent one `send_to` at a time.
//!
//!   cargo bench --bench packet_path

use convoke::media::batch::SendBatch;
use convoke::media::roster::{attribute, Member};
use convoke::media::rtp::{classify, feedback_target, ssrc};
use convoke::media::stats::RtpReceiveStats;
use convoke::media::{MemberConfig, AUDIO};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

fn rtp_packet(seq: u16) -> [u8; 172] {
    let mut p = [0u8; 172];
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    p
}

fn roster(n: u16) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let rtp: SocketAddr = ([127, 0, 0, 1], 10_000 + 2 * i).into();
            Member::new(MemberConfig::plain_audio(u64::from(i), rtp, None))
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let p = rtp_packet(1);
    let mut rtcp = vec![0x80, 201, 0, 1, 0, 0, 0, 9];
    rtcp.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 9, 0, 0, 0xAB, 0xCD]);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtp classify+ssrc", |b| {
        b.iter(|| {
            let k = classify(black_box(&p)).unwrap();
            ssrc(black_box(&p), k)
        })
    });
    g.bench_function("rtcp feedback target", |b| {
        b.iter(|| feedback_target(black_box(&rtcp)))
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("attribute");
    g.throughput(Throughput::Elements(1));
    for n in [5u16, 9, 50] {
        let mut members = roster(n);
        let packet = [0x80u8; 172];
        // Latch everyone (their declared addresses), then look up the last member (the
        // longest scan).
        for i in 0..n {
            attribute(
                &mut members,
                AUDIO,
                false,
                ([127, 0, 0, 1], 10_000 + 2 * i).into(),
                &packet,
            );
        }
        let last: SocketAddr = ([127, 0, 0, 1], 10_000 + 2 * (n - 1)).into();
        g.bench_function(format!("{n} members, last"), |b| {
            b.iter(|| {
                attribute(
                    black_box(&mut members),
                    AUDIO,
                    false,
                    black_box(last),
                    &packet,
                )
            })
        });
    }
    g.finish();
}

fn statistics(c: &mut Criterion) {
    let mut s = RtpReceiveStats::default();
    let mut seq = 0u16;
    let mut g = c.benchmark_group("statistics");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rfc3550 update", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            s.update(
                0x1234,
                seq,
                u32::from(seq) * 160,
                Duration::from_millis(u64::from(seq) * 20),
                8000,
            );
        })
    });
    g.finish();
}

fn fan_out(c: &mut Criterion) {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.set_nonblocking(true).unwrap();
    // Receivers that are never read: the kernel drops what overflows, as for a real member
    // that is slow. Sizes are what a 5-party conference forwards per received batch.
    let rx: Vec<UdpSocket> = (0..4)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let dests: Vec<SocketAddr> = rx.iter().map(|s| s.local_addr().unwrap()).collect();
    let packets: Vec<[u8; 172]> = (0..32).map(rtp_packet).collect();
    let mut g = c.benchmark_group("fan-out 32 packets x 4");
    g.throughput(Throughput::Elements(128));
    let mut batch = SendBatch::new();
    g.bench_function("sendmmsg batches", |b| {
        b.iter(|| {
            for p in &packets {
                for d in &dests {
                    if batch.is_full() {
                        batch.flush(tx.as_raw_fd());
                    }
                    // SAFETY: `packets` outlives the flush below.
                    unsafe { batch.push(p, *d) };
                }
            }
            batch.flush(tx.as_raw_fd())
        })
    });
    g.bench_function("send_to each (reference)", |b| {
        b.iter(|| {
            for p in &packets {
                for d in &dests {
                    let _ = tx.send_to(p, d);
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parse, lookup, statistics, fan_out);
criterion_main!(benches);
