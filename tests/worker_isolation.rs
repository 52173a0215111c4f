//! A crash in one conference's worker touches no other conference: the supervisor restarts it
//! on the same port with the same roster (a short gap, no re-INVITE), the others lose nothing,
//! and a worker that keeps crashing is closed cleanly (BYE, conference marked failed).
//! Both isolation modes: a task per conference, and a process per conference (where the test
//! also SIGKILLs the worker process). Needs the `fault-injection` feature (the README's test
//! command enables it).
#![cfg(feature = "fault-injection")]

mod common;

use common::rtp::RtpPeer;
use common::ua::{Call, Ua};
use common::{password, Server};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Room {
    id: String,
    talker: RtpPeer,
    listener: RtpPeer,
    port: u16,
    calls: Vec<(Ua, Call)>,
}

fn room(server: &Server, n: u32) -> Room {
    let (id, pin) = server.open_conference(&format!("room {n}"));
    let uri = server.forward_uri(&id, &pin);
    let talker = RtpPeer::bind("127.0.0.1", 0x1000 + n);
    let listener = RtpPeer::bind("127.0.0.1", 0x2000 + n);
    let mut calls = Vec::new();
    for (user, rtp) in [("alice", &talker), ("bob", &listener)] {
        let mut ua = Ua::new(user, server.sip);
        let call = ua.invite(&uri, &rtp.offer(), None, &[]).expect("join");
        calls.push((ua, call));
    }
    let port = calls[0].1.media_port();
    Room {
        id,
        talker,
        listener,
        port,
        calls,
    }
}

#[derive(Clone, Copy)]
enum Fault {
    /// The worker panics (fault-injection API).
    Panic,
    /// The worker process is killed with SIGKILL.
    Kill,
}

fn inject(server: &Server, id: &str, fault: Fault) {
    match fault {
        Fault::Panic => crash(server, id),
        Fault::Kill => {
            let info = server.get(&format!("/api/v1/conferences/{id}"));
            let pid = info["worker"]["pid"].as_u64().expect("a worker process") as i32;
            // SAFETY: plain kill(2) on a process id the server reported for its own child.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        }
    }
}

fn crash(server: &Server, id: &str) {
    let r = server
        .http()
        .post(server.url(&format!("/api/v1/conferences/{id}/crash")))
        .basic_auth(common::OPERATOR, Some(password(common::OPERATOR)))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
}

#[test]
fn task_panic_restarts_on_the_same_port_and_spares_the_others() {
    crash_spares_the_others(&["--isolation", "task"], Fault::Panic);
}

#[test]
fn process_panic_restarts_on_the_same_port_and_spares_the_others() {
    crash_spares_the_others(&["--isolation", "process"], Fault::Panic);
}

#[test]
fn process_sigkill_restarts_on_the_same_port_and_spares_the_others() {
    crash_spares_the_others(&["--isolation", "process"], Fault::Kill);
}

fn crash_spares_the_others(mode: &[&str], fault: Fault) {
    let server = Server::start_with(mode);
    let mut rooms: Vec<Room> = (0..5).map(|n| room(&server, n)).collect();
    // 3 s of 50 packets/s in every room; room 0's worker crashes after 1 s.
    let start = Instant::now();
    let mut crashed = false;
    for tick in 0..150u32 {
        for r in rooms.iter_mut() {
            r.talker.send(SocketAddr::from(([127, 0, 0, 1], r.port)));
            // The listener sends too, as a phone in a call does: the focus sends only a few
            // packets to an address nothing came from (and a restarted worker learns anew).
            r.listener.send(SocketAddr::from(([127, 0, 0, 1], r.port)));
        }
        if tick == 50 {
            inject(&server, &rooms[0].id, fault);
            crashed = true;
        }
        let next = start + Duration::from_millis(20 * u64::from(tick + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    assert!(crashed);
    // Late is not lost: wait (bounded) for every room to have its 150 packets.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline
        && rooms[1..]
            .iter()
            .any(|r| r.listener.received_from(r.talker.ssrc) < 150)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let counts: Vec<u64> = rooms
        .iter()
        .map(|r| r.listener.received_from(r.talker.ssrc))
        .collect();
    eprintln!("received per room: {counts:?}");
    for r in &rooms[1..] {
        assert_eq!(
            r.listener.received_from(r.talker.ssrc),
            150,
            "room {} lost packets while room 0 crashed",
            r.id
        );
    }
    let got = rooms[0].listener.received_from(rooms[0].talker.ssrc);
    let lost = 150 - got;
    eprintln!(
        "crashed room lost {lost} packets of 150 (gap ≈ {} ms at 20 ms per packet)",
        lost * 20
    );
    assert!(
        lost <= 5,
        "the restart gap must stay under 100 ms, lost {lost}"
    );
    let info = server.get(&format!("/api/v1/conferences/{}", rooms[0].id));
    assert_eq!(info["worker"]["restarts"], 1);
    assert_eq!(info["worker"]["state"], "serving");
    assert_eq!(
        info["worker"]["audio_port"], rooms[0].port,
        "same port after the restart"
    );
    assert_eq!(
        info["participants"].as_array().unwrap().len(),
        2,
        "same roster, no re-INVITE"
    );
    assert!(server
        .log_text()
        .contains("media worker crashed; restarting on the same ports"));
    for r in rooms.iter_mut() {
        for (ua, call) in r.calls.iter_mut() {
            assert_eq!(ua.bye(call).status, 200);
        }
    }
}

#[test]
fn a_worker_that_keeps_crashing_closes_its_conference() {
    keeps_crashing(&["--isolation", "task"]);
}

#[test]
fn a_worker_process_that_keeps_crashing_closes_its_conference() {
    keeps_crashing(&["--isolation", "process"]);
}

fn keeps_crashing(mode: &[&str]) {
    let server = Server::start_with(mode);
    let mut r = room(&server, 9);
    for n in 1..=4u64 {
        crash(&server, &r.id);
        // Wait for each restart (or the final failure) before the next crash.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let info = server.get(&format!("/api/v1/conferences/{}", r.id));
            if info["worker"]["restarts"].as_u64() == Some(n) || info["state"] == "failed" {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Both participants get a BYE from the focus.
    for (ua, _) in r.calls.iter_mut() {
        assert!(
            ua.await_request("BYE", "", Duration::from_secs(5))
                .is_some(),
            "BYE after the worker failed"
        );
    }
    let info = server.get(&format!("/api/v1/conferences/{}", r.id));
    assert_eq!(info["state"], "failed");
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
    // A failed conference refuses joins.
    let mut late = Ua::new("carol", server.sip);
    let pin = info["pin"].as_str().unwrap().to_string();
    let refused = late
        .invite(
            &format!("sip:{}@{};pin={pin}", r.id, server.sip),
            &r.talker.offer(),
            None,
            &[],
        )
        .err();
    assert_eq!(refused.map(|x| x.status), Some(404));
}

/// The generator's conference load (20 conferences of 3, 50 pps each, real SIP joins) runs
/// while one worker is crashed: every other conference receives every packet.
#[cfg(feature = "load")]
fn crash_under_load(mode: &[&str], fault: Fault) {
    let server = Server::start_with(&[mode, common::load::LOAD_LIMITS].concat());
    let args = common::load::conference_args(
        &server,
        &["-c", "20", "-p", "3", "--warmup", "1", "-d", "4"],
    );
    let load = common::load::spawn_load(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Joined when the workers API shows 60 participants (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    let victim = loop {
        let w = server.get("/api/v1/workers");
        let serving = w["serving"].as_array().cloned().unwrap_or_default();
        let joined: u64 = serving
            .iter()
            .filter_map(|s| s["participants"].as_u64())
            .sum();
        if joined == 60 {
            break serving[0]["conference"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "joins did not complete: {w}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Into the measuring window (1 s warm-up), then the fault.
    std::thread::sleep(Duration::from_millis(2500));
    inject(&server, &victim, fault);
    let r = load.finish();
    let ids = r["joins"]["conferences"].as_array().unwrap();
    let confs = r["media"]["conferences"].as_array().unwrap();
    let mut victim_media = None;
    for (id, m) in ids.iter().zip(confs) {
        assert!(m["expected"].as_u64().unwrap() > 0, "{m}");
        if id == victim.as_str() {
            victim_media = Some(m.clone());
            continue;
        }
        assert_eq!(
            m["received"], m["expected"],
            "conference {id} lost packets while {victim} crashed: {m}"
        );
    }
    let v = victim_media.expect("the victim is one of the generator's conferences");
    let others_gap = confs
        .iter()
        .filter_map(|m| m["max_gap_us"].as_u64())
        .min()
        .unwrap_or(0);
    eprintln!(
        "crashed conference: {} of {} packets, longest gap {} µs (least longest gap elsewhere {} µs); others: no loss",
        v["received"], v["expected"], v["max_gap_us"], others_gap
    );
    let w = server.get("/api/v1/workers");
    let entry = w["serving"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["conference"] == victim.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["restarts"], 1, "{w}");
}

#[cfg(feature = "load")]
#[test]
fn task_panic_under_load_loses_nothing_elsewhere() {
    crash_under_load(&["--isolation", "task"], Fault::Panic);
}

#[cfg(feature = "load")]
#[test]
fn process_sigkill_under_load_loses_nothing_elsewhere() {
    crash_under_load(&["--isolation", "process"], Fault::Kill);
}
