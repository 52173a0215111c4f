//! Interop with SIPp (Debian `sip-tester`): register, open, join with RTP, refusals, REFER
//! dial-out to a SIPp invitee. Scenarios live in tests/sipp/.

mod common;

use common::{finish_sipp, password, sipp, sipp_as_user, sipp_invitee, sipp_register, Server};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn phone(server: &Server, scenario: &str, user: &str, conf: &str, pin: &str) -> common::SippRun {
    common::sipp_phone(server, None, scenario, user, conf, pin)
}

fn port() -> String {
    common::free_sip_port().to_string()
}

#[test]
fn register_and_unregister() {
    let server = Server::start();
    let p = port();
    sipp_register(&server, "alice", &p).assert_ok("register");
    assert_eq!(server.get("/api/v1/status")["registrations"], 1);
    let wrong = sipp_as_user(&server, "register.xml", "bob", "wrong", &port(), &[]);
    assert!(!wrong.success, "a wrong password must not register");
    assert!(
        wrong.errors.contains("403"),
        "wrong password answered 403: {}",
        wrong.errors
    );
    sipp_as_user(
        &server,
        "unregister.xml",
        "alice",
        password("alice"),
        &p,
        &[],
    )
    .assert_ok("unregister");
    assert_eq!(server.get("/api/v1/status")["registrations"], 0);
}

#[test]
fn open_then_two_sipp_phones_exchange_rtp() {
    let server = Server::start();
    let open = sipp(
        &server,
        "open.xml",
        &[
            "-s",
            "alice",
            "-au",
            "alice",
            "-ap",
            password("alice"),
            "-m",
            "1",
            "-p",
            &port(),
            "-mp",
            &common::sipp_media_port(),
        ],
        LIMIT,
    );
    open.assert_ok("open");
    let line = open
        .log
        .lines()
        .find(|l| l.starts_with("opened "))
        .expect("open logged the conference");
    let mut parts = line.split_whitespace().skip(1);
    let (conf, pin) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    );
    let row = server.get(&format!("/api/v1/conferences/{conf}"));
    assert_eq!(row["name"], "SIPp standup");
    assert_eq!(row["owner"], "alice");

    let carol = phone(&server, "join.xml", "carol", &conf, &pin);
    let dave = phone(&server, "join.xml", "dave", &conf, &pin);
    std::thread::sleep(Duration::from_millis(3500));
    let roster = server.get(&format!("/api/v1/conferences/{conf}"));
    let participants = roster["participants"].as_array().unwrap().clone();
    let carol = finish_sipp(carol, LIMIT);
    let dave = finish_sipp(dave, LIMIT);
    carol.assert_ok("carol joins");
    dave.assert_ok("dave joins");
    eprintln!("SIPp join summary:\n{}", carol.summary());
    assert_eq!(participants.len(), 2, "roster during the call: {roster}");
    for p in &participants {
        // Each phone's pcap RTP reached the conference port and was forwarded to the other.
        assert!(p["rx_packets"].as_u64().unwrap() > 50, "{p}");
        assert!(p["tx_packets"].as_u64().unwrap() > 50, "{p}");
    }
    let joined_ports: Vec<&str> = [&carol, &dave]
        .iter()
        .filter_map(|s| s.log.lines().find(|l| l.starts_with("joined port")))
        .collect();
    assert_eq!(joined_ports.len(), 2);
    assert_eq!(
        joined_ports[0], joined_ports[1],
        "both phones got the conference's one port"
    );
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
}

#[test]
fn sipp_refusals() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("refusals");
    for (file, conf, pin) in [
        ("join_wrong_pin.xml", conf.as_str(), "000000"),
        ("join_unknown.xml", "nosuchconf", "1"),
        ("join_no_codec.xml", conf.as_str(), pin.as_str()),
    ] {
        finish_sipp(phone(&server, file, "carol", conf, pin), LIMIT).assert_ok(file);
    }
}

#[test]
fn refer_dials_out_to_a_registered_sipp_phone() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("REFER test");
    let bob = sipp_invitee(&server, "bob");
    let carol = sipp(
        &server,
        "join_refer.xml",
        &[
            "-s",
            "carol",
            "-key",
            "conf",
            &conf,
            "-key",
            "pin",
            &pin,
            "-key",
            "invitee",
            "bob",
            "-au",
            "carol",
            "-ap",
            password("carol"),
            "-m",
            "1",
            "-p",
            &port(),
            "-mp",
            &common::sipp_media_port(),
        ],
        LIMIT,
    );
    let bob = finish_sipp(bob, LIMIT);
    carol.assert_ok("carol REFERs bob and gets 202 + sipfrag NOTIFYs");
    bob.assert_ok("bob is dialled with the conference's identity");
    assert!(
        bob.log.contains(&format!("invited to {conf} subject")),
        "bob's log: {}",
        bob.log
    );
    assert!(bob.log.contains("REFER test"));
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
}

#[test]
fn register_and_join_over_tcp() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("over TCP");
    let p = port();
    sipp_as_user(
        &server,
        "register.xml",
        "alice",
        password("alice"),
        &p,
        &["-t", "t1"],
    )
    .assert_ok("register over TCP");
    assert_eq!(server.get("/api/v1/status")["registrations"], 1);
    let joins = sipp(
        &server,
        "join_bench.xml",
        &[
            "-t",
            "t1",
            "-s",
            "carol",
            "-key",
            "conf",
            &conf,
            "-key",
            "pin",
            &pin,
            "-m",
            "20",
            "-r",
            "20",
            "-p",
            &port(),
        ],
        LIMIT,
    );
    joins.assert_ok("20 joins over TCP");
    assert_eq!(joins.successful_calls(), 20, "{}", joins.summary());
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
}

#[test]
fn delayed_offer_phone_and_normal_phone_hear_each_other() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("delayed offer");
    let late = phone(&server, "join_delayed_offer.xml", "carol", &conf, &pin);
    let normal = phone(&server, "join.xml", "dave", &conf, &pin);
    std::thread::sleep(Duration::from_millis(3500));
    let roster = server.get(&format!("/api/v1/conferences/{conf}"));
    let late = finish_sipp(late, LIMIT);
    let normal = finish_sipp(normal, LIMIT);
    late.assert_ok("delayed-offer join (offer in our 200, answer in its ACK)");
    normal.assert_ok("normal join");
    let participants = roster["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2, "{roster}");
    for p in participants {
        assert!(
            p["rx_packets"].as_u64().unwrap() > 50 && p["tx_packets"].as_u64().unwrap() > 50,
            "{p}"
        );
    }
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
}
