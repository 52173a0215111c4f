//! Three participants in one conference and two in another: each receives the others' RTP
//! (counted by SSRC) through its conference's own port, nothing from the other conference,
//! and nothing a stranger sends to the port.

mod common;

use common::rtp::RtpPeer;
use common::ua::{Call, Ua};
use common::Server;
use std::net::SocketAddr;
use std::time::Duration;

struct Member {
    ua: Ua,
    rtp: RtpPeer,
    call: Call,
}

fn join(server: &Server, user: &str, conf: &str, pin: &str, ssrc: u32) -> Member {
    let mut ua = Ua::new(user, server.sip);
    let rtp = RtpPeer::bind("127.0.0.1", ssrc);
    let uri = server.forward_uri(conf, pin);
    let call = ua
        .invite(&uri, &rtp.offer(), None, &[])
        .unwrap_or_else(|r| panic!("join refused: {} {}", r.status, r.reason));
    Member { ua, rtp, call }
}

#[test]
fn packets_reach_every_other_member_of_the_same_conference_only() {
    let server = Server::start();
    let (a, a_pin) = server.open_conference("A");
    let (b, b_pin) = server.open_conference("B");
    let mut room_a: Vec<Member> = [("alice", 0xA1), ("bob", 0xA2), ("carol", 0xA3)]
        .iter()
        .map(|(u, s)| join(&server, u, &a, &a_pin, *s))
        .collect();
    let mut room_b: Vec<Member> = [("dave", 0xB1), ("alice", 0xB2)]
        .iter()
        .map(|(u, s)| join(&server, u, &b, &b_pin, *s))
        .collect();

    // One port per conference, shared by its members.
    let port_a = room_a[0].call.media_port();
    let port_b = room_b[0].call.media_port();
    assert!(room_a.iter().all(|m| m.call.media_port() == port_a));
    assert!(room_b.iter().all(|m| m.call.media_port() == port_b));
    assert_ne!(port_a, port_b);
    assert!((server.media.0..=server.media.1).contains(&port_a));

    let to_a = SocketAddr::from(([127, 0, 0, 1], port_a));
    let to_b = SocketAddr::from(([127, 0, 0, 1], port_b));
    let mut stranger = RtpPeer::bind("127.0.0.9", 0x0BAD);
    for _ in 0..50 {
        for m in room_a.iter_mut() {
            m.rtp.send(to_a);
        }
        for m in room_b.iter_mut() {
            m.rtp.send(to_b);
        }
        stranger.send(to_a);
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(500));

    for m in &room_a {
        for other in &room_a {
            let got = m.rtp.received_from(other.rtp.ssrc);
            if other.rtp.ssrc == m.rtp.ssrc {
                assert_eq!(got, 0, "{:x} hears itself", m.rtp.ssrc);
            } else {
                assert!(
                    got >= 45,
                    "{:x} got {got} packets of {:x}",
                    m.rtp.ssrc,
                    other.rtp.ssrc
                );
            }
        }
        for other in &room_b {
            assert_eq!(
                m.rtp.received_from(other.rtp.ssrc),
                0,
                "conference B leaked into A"
            );
        }
        assert_eq!(
            m.rtp.received_from(0x0BAD),
            0,
            "a stranger's packet was forwarded"
        );
    }
    for m in &room_b {
        let others: u64 = room_a.iter().map(|o| m.rtp.received_from(o.rtp.ssrc)).sum();
        assert_eq!(others, 0, "conference A leaked into B");
        let peer = room_b.iter().find(|o| o.rtp.ssrc != m.rtp.ssrc).unwrap();
        assert!(m.rtp.received_from(peer.rtp.ssrc) >= 45);
    }

    // The API's roster shows the same traffic.
    let roster = server.get(&format!("/api/v1/conferences/{a}"));
    let participants = roster["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 3);
    for p in participants {
        assert!(p["rx_packets"].as_u64().unwrap() >= 45);
        assert!(p["tx_packets"].as_u64().unwrap() >= 90);
    }

    for m in room_a.iter_mut().chain(room_b.iter_mut()) {
        assert_eq!(m.ua.bye(&mut m.call).status, 200);
    }
    let status = server.wait_no_dialogs();
    assert_eq!(status["dialogs"], 0);
}

#[test]
fn hold_stops_sending_and_resume_restarts() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("hold");
    let mut alice = join(&server, "alice", &conf, &pin, 0xC1);
    let mut bob = join(&server, "bob", &conf, &pin, 0xC2);
    let to = SocketAddr::from(([127, 0, 0, 1], alice.call.media_port()));
    // Bob puts the conference on hold: he sends nothing and must receive nothing.
    let hold = bob
        .rtp
        .offer()
        .replace("a=rtcp-mux", "a=rtcp-mux\r\na=sendonly");
    let resp = bob.ua.reinvite(&mut bob.call, &hold);
    assert_eq!(resp.status, 200);
    assert!(String::from_utf8_lossy(&resp.body).contains("a=recvonly"));
    for _ in 0..20 {
        alice.rtp.send(to);
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        bob.rtp.received_from(0xC1),
        0,
        "held participant still receives"
    );
    let resp = bob.ua.reinvite(&mut bob.call, &bob.rtp.offer());
    assert_eq!(resp.status, 200);
    for _ in 0..20 {
        alice.rtp.send(to);
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        bob.rtp.received_from(0xC1) >= 18,
        "resumed participant receives again"
    );
    alice.ua.bye(&mut alice.call);
    bob.ua.bye(&mut bob.call);
}

/// Audio on the conference's audio port and video (VP8) on its video port, both forwarded.
#[test]
fn video_is_forwarded_on_the_video_port() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("video");
    let uri = server.forward_uri(&conf, &pin);
    let mut peers = Vec::new();
    for (user, ssrc) in [("alice", 0xD1u32), ("bob", 0xD2)] {
        let audio = RtpPeer::bind("127.0.0.1", ssrc);
        let video = RtpPeer::bind("127.0.0.1", ssrc + 0x100);
        let sdp = format!(
            "{}m=video {} RTP/AVPF 100\r\na=rtpmap:100 VP8/90000\r\na=rtcp-mux\r\n",
            audio.offer(),
            video.port()
        );
        let mut ua = Ua::new(user, server.sip);
        let call = ua.invite(&uri, &sdp, None, &[]).expect("join with video");
        let answer = String::from_utf8_lossy(&call.answer.body).to_string();
        let video_port: u16 = answer
            .lines()
            .find(|l| l.starts_with("m=video"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .expect("video accepted");
        assert_eq!(video_port, call.media_port() + 2);
        peers.push((ua, call, audio, video, video_port));
    }
    let port = peers[0].4;
    // Bob's video socket speaks first, as a phone's does (RTCP at least).
    peers[1]
        .3
        .announce(SocketAddr::from(([127, 0, 0, 1], port)));
    for _ in 0..30 {
        peers[0].3.send(SocketAddr::from(([127, 0, 0, 1], port)));
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        peers[1].3.received_from(0xD1 + 0x100) >= 28,
        "bob's video socket got alice's video"
    );
    assert_eq!(
        peers[1].2.received_from(0xD1 + 0x100),
        0,
        "video does not leak onto the audio stream"
    );
    for (ua, call, ..) in peers.iter_mut() {
        ua.bye(call);
    }
}

/// A phone behind NAT declares one port in its SDP but sends from another: the focus latches
/// onto where the packets come from and sends there.
#[test]
fn nat_latching_reaches_the_real_source() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("nat");
    let mut bob = join(&server, "bob", &conf, &pin, 0xE2);
    let to = SocketAddr::from(([127, 0, 0, 1], bob.call.media_port()));
    // Bob sends first so his own declared address latches.
    bob.rtp.send(to);
    let behind_nat = RtpPeer::bind("127.0.0.1", 0xE1);
    let declared = common::free_sip_port(); // nothing listens there
    let sdp = behind_nat.offer().replace(
        &format!("m=audio {}", behind_nat.port()),
        &format!("m=audio {declared}"),
    );
    let mut alice_ua = Ua::new("alice", server.sip);
    let uri = server.forward_uri(&conf, &pin);
    let mut alice_call = alice_ua.invite(&uri, &sdp, None, &[]).expect("join");
    let mut alice_rtp = behind_nat;
    for _ in 0..20 {
        alice_rtp.send(to);
        bob.rtp.send(to);
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        bob.rtp.received_from(0xE1) >= 18,
        "the NATed phone is heard"
    );
    assert!(
        alice_rtp.received_from(0xE2) >= 18,
        "the NATed phone hears, at its real source port"
    );
    alice_ua.bye(&mut alice_call);
    bob.ua.bye(&mut bob.call);
}

/// Delayed offer: the focus offers in its 200 and the ACK answers. With an answer, media flows;
/// an ACK without an answer ends the call with the focus's BYE.
#[test]
fn delayed_offer_with_and_without_an_answer() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("delayed");
    let uri = server.forward_uri(&conf, &pin);
    let mut alice = join(&server, "alice", &conf, &pin, 0xAA);
    let mut bob_ua = Ua::new("bob", server.sip);
    let bob_rtp = RtpPeer::bind("127.0.0.1", 0xBB);
    let mut bob_call = bob_ua
        .invite_without_offer(&uri, &bob_rtp.offer())
        .expect("delayed-offer join");
    let offer = String::from_utf8_lossy(&bob_call.answer.body).to_string();
    assert!(
        offer.contains("m=audio") && offer.contains("PCMU/8000"),
        "the 200 carries our offer: {offer}"
    );
    let to = SocketAddr::from(([127, 0, 0, 1], alice.call.media_port()));
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..20 {
        alice.rtp.send(to);
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        bob_rtp.received_from(0xAA) >= 18,
        "media reaches the delayed-offer participant"
    );
    assert_eq!(bob_ua.bye(&mut bob_call).status, 200);

    let mut carol = Ua::new("carol", server.sip);
    let _call = carol
        .invite_without_offer(&uri, "")
        .expect("200 with an offer");
    assert!(
        carol
            .await_request("BYE", "", Duration::from_secs(5))
            .is_some(),
        "no answer in the ACK: BYE"
    );
    assert_eq!(alice.ua.bye(&mut alice.call).status, 200);
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
}

/// Loss and jitter of what each participant sends, per RFC 3550, in the roster.
#[test]
fn roster_reports_loss_and_jitter() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("stats");
    let mut alice = join(&server, "alice", &conf, &pin, 0x51);
    let mut bob = join(&server, "bob", &conf, &pin, 0x52);
    let to = SocketAddr::from(([127, 0, 0, 1], alice.call.media_port()));
    for i in 0..60 {
        if i == 30 {
            alice.rtp.skip(5);
        }
        alice.rtp.send(to);
        bob.rtp.send(to);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let roster = server.get(&format!("/api/v1/conferences/{conf}"));
    let of = |user: &str| {
        roster["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["user"] == user)
            .unwrap()
            .clone()
    };
    assert_eq!(of("alice")["lost"], 5, "{roster}");
    assert_eq!(of("bob")["lost"], 0, "{roster}");
    let jitter = of("bob")["jitter_ms"].as_f64().unwrap();
    assert!(
        (0.0..20.0).contains(&jitter),
        "jitter {jitter} ms for a 20 ms sender on loopback"
    );
    alice.ua.bye(&mut alice.call);
    bob.ua.bye(&mut bob.call);
}

/// RTCP feedback goes to the sender of the media it names (a PLI reaches only the video
/// sender, so a new participant gets a key frame without waking everyone); a receiver report
/// goes to everyone else.
#[test]
fn rtcp_feedback_is_routed_to_the_media_sender() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("feedback");
    let uri = server.forward_uri(&conf, &pin);
    let mut video = Vec::new();
    let mut calls = Vec::new();
    for (user, ssrc) in [("alice", 0x7001u32), ("bob", 0x7002), ("carol", 0x7003)] {
        let audio = RtpPeer::bind("127.0.0.1", ssrc);
        let v = RtpPeer::bind("127.0.0.1", ssrc + 0x100);
        let sdp = format!(
            "{}m=video {} RTP/AVPF 100\r\na=rtpmap:100 VP8/90000\r\na=rtcp-mux\r\n",
            audio.offer(),
            v.port()
        );
        let mut ua = Ua::new(user, server.sip);
        let call = ua.invite(&uri, &sdp, None, &[]).expect("join with video");
        let port = call.media_port() + 2;
        video.push((v, port));
        calls.push((ua, call, audio));
    }
    let port = video[0].1;
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    // Everyone sends some video, so the focus knows whose SSRC is whose.
    for _ in 0..5 {
        for (v, _) in video.iter_mut() {
            v.send(to);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let before: Vec<u64> = video.iter().map(|(v, _)| v.rtcp_received()).collect();
    // Bob asks alice's video for a key frame: RR + PLI (RFC 4585) for media SSRC 0x7101.
    let mut pli = vec![0x80, 201, 0, 1, 0, 0, 0x71, 0x02];
    pli.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0x71, 0x02, 0, 0, 0x71, 0x01]);
    video[1].0.send_rtcp(&pli, to);
    std::thread::sleep(Duration::from_millis(200));
    let after: Vec<u64> = video.iter().map(|(v, _)| v.rtcp_received()).collect();
    assert_eq!(
        after[0] - before[0],
        1,
        "the PLI reaches alice, the sender of 0x7101"
    );
    assert_eq!(
        after[2] - before[2],
        0,
        "carol does not get bob's PLI for alice"
    );
    // A plain receiver report goes to everyone else.
    video[1]
        .0
        .send_rtcp(&[0x80, 201, 0, 1, 0, 0, 0x71, 0x02], to);
    std::thread::sleep(Duration::from_millis(200));
    let last: Vec<u64> = video.iter().map(|(v, _)| v.rtcp_received()).collect();
    assert_eq!(
        (last[0] - after[0], last[1] - after[1], last[2] - after[2]),
        (1, 0, 1)
    );
    for (ua, call, _) in calls.iter_mut() {
        ua.bye(call);
    }
}
