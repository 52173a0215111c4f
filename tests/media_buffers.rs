//! Media socket buffers: a stalled server loses the packets its sockets cannot hold, counts
//! them (SO_RXQ_OVFL) in the API and `/metrics`, and with the default sizing holds a stall
//! that a small buffer does not. Also the rest of `/metrics` for a live conference.

mod common;

use common::rtp::RtpPeer;
use common::ua::Ua;
use common::Server;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const BURST: u64 = 2_000;

struct Outcome {
    received: u64,
    overflow: u64,
    metrics: String,
    conference: String,
}

/// Joins one phone, stops the server, sends a burst from the phone, lets the server go on,
/// then sends a few more packets (the kernel reports its drop count on the packets that
/// arrive after the drops) and reads the counters.
fn stall_with_a_burst(server: &Server) -> Outcome {
    let (conf, pin) = server.open_conference("stall");
    let mut rtp = RtpPeer::bind("127.0.0.1", 77);
    let mut phone = Ua::new("carol", server.sip);
    let _call = phone
        .invite(&server.forward_uri(&conf, &pin), &rtp.offer(), None, &[])
        .expect("join");
    let port = server.get(&format!("/api/v1/conferences/{conf}"))["media_port"]
        .as_u64()
        .unwrap() as u16;
    let media = SocketAddr::from(([127, 0, 0, 1], port));
    rtp.announce(media);

    server.signal(libc::SIGSTOP);
    for _ in 0..BURST {
        rtp.send(media);
    }
    server.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(300));
    // Paced, as a phone sends: each finds room in the buffer again.
    for _ in 0..5 {
        rtp.send(media);
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = BURST + 6;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let detail = server.get(&format!("/api/v1/conferences/{conf}"));
        let packets = &detail["worker"]["packets"];
        let received = packets["in"].as_u64().unwrap_or(0);
        let overflow = packets["overflow"].as_u64().unwrap_or(0);
        if received + overflow >= sent || Instant::now() > deadline {
            return Outcome {
                received,
                overflow,
                metrics: server.metrics_text(),
                conference: conf,
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn a_small_buffer_overflows_in_a_stall_and_it_is_counted() {
    // The kernel's smallest buffer (it rounds 1 byte up to about 4.5 KiB): some 20 packets.
    let server = Server::start_with(&["--media-receive-buffer", "1"]);
    let out = stall_with_a_burst(&server);
    assert!(
        out.overflow > 0,
        "{} received, none counted as overflow",
        out.received
    );
    assert_eq!(
        out.received + out.overflow,
        BURST + 6,
        "every packet is either received or counted as dropped by the kernel"
    );
    let series = format!(
        "convoke_media_packets_total{{conference=\"{}\",direction=\"overflow\"}}",
        out.conference
    );
    assert_eq!(
        metric(&out.metrics, &series),
        Some(out.overflow),
        "{}",
        out.metrics
    );
}

#[test]
fn the_default_buffers_hold_a_stall_and_metrics_cover_the_conference() {
    let server = Server::start();
    let out = stall_with_a_burst(&server);
    assert_eq!(
        out.overflow, 0,
        "the default 8 MiB receive buffer holds the burst"
    );
    assert_eq!(out.received, BURST + 6);

    // The rest of /metrics for this live conference, and the server's levels.
    let m = &out.metrics;
    let c = &out.conference;
    assert_eq!(
        metric(m, "convoke_joins_total{status=\"200\"}"),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(m, "convoke_conferences_opened_total"),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(m, "convoke_live_conferences"), Some(1), "{m}");
    assert_eq!(
        metric(m, &format!("convoke_participants{{conference=\"{c}\"}}")),
        Some(1),
        "{m}"
    );
    let received = format!("convoke_media_packets_total{{conference=\"{c}\",direction=\"in\"}}");
    assert_eq!(metric(m, &received), Some(BURST + 6), "{m}");
    for series in [
        format!("convoke_media_packets_total{{conference=\"{c}\",direction=\"out\"}}"),
        format!("convoke_media_packets_total{{conference=\"{c}\",direction=\"dropped\"}}"),
        format!("convoke_mixer_late_frames_total{{conference=\"{c}\"}}"),
        format!("convoke_worker_restarts_total{{conference=\"{c}\"}}"),
        "convoke_sip_transactions".to_string(),
        "convoke_dialogs".to_string(),
        "convoke_registrations".to_string(),
        "convoke_warm_workers".to_string(),
    ] {
        assert!(metric(m, &series).is_some(), "{series} missing:\n{m}");
    }
    // A wrong PIN is a join answered 403.
    let rtp = RtpPeer::bind("127.0.0.1", 78);
    let refused = Ua::new("mallory", server.sip).invite(
        &server.join_uri(c, "000000000"),
        &rtp.offer(),
        None,
        &[],
    );
    assert_eq!(refused.err().map(|r| r.status), Some(403));
    assert_eq!(
        metric(
            &server.metrics_text(),
            "convoke_joins_total{status=\"403\"}"
        ),
        Some(1)
    );
}
