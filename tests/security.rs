//! The attacks of the security review, performed against the real server on loopback; each
//! asserts the refusal. They stay in the suite so that none comes back.

mod common;

use common::rtp::RtpPeer;
use common::ua::Ua;
use common::{password, Server};
use convoke::sip::digest::{authorize, parse_challenge};
use convoke::sip::{HeaderName, SipHeaders};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

fn status(r: reqwest::blocking::RequestBuilder) -> u16 {
    r.send().unwrap().status().as_u16()
}

/// An HTTP client whose connections come from `source` (any 127.0.0.0/8 address).
fn client_from(source: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Finding 1: an account sees and invites into its own conferences only.
#[test]
fn accounts_cannot_read_or_use_other_peoples_conferences() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("alice's");
    let http = server.http();
    let as_bob = |r: reqwest::blocking::RequestBuilder| r.basic_auth("bob", Some(password("bob")));

    // Server-wide views are for operators.
    assert_eq!(status(as_bob(http.get(server.url("/api/v1/workers")))), 403);
    assert_eq!(status(as_bob(http.get(server.url("/api/v1/status")))), 403);
    assert_eq!(status(as_bob(http.get(server.url("/metrics")))), 403);
    assert_eq!(status(http.get(server.url("/metrics"))), 401);
    // Another's conference: not even its existence, no PIN, no invitations.
    let url = server.url(&format!("/api/v1/conferences/{conf}"));
    assert_eq!(status(as_bob(http.get(&url))), 404);
    let invite = as_bob(http.post(format!("{url}/invitations")))
        .json(&serde_json::json!({"users": ["bob"]}));
    assert_eq!(status(invite), 404);
    let crash = as_bob(http.post(format!("{url}/crash")));
    assert_eq!(status(crash), 403);
    let listed: serde_json::Value = as_bob(http.get(server.url("/api/v1/conferences")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["conferences"], serde_json::json!([]), "{listed}");
    // The owner sees the PIN; the operator sees every conference.
    let own: serde_json::Value = http
        .get(&url)
        .basic_auth("alice", Some(password("alice")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(own["pin"], pin.as_str());
    let all = server.get("/api/v1/conferences");
    assert_eq!(all["conferences"][0]["id"], conf.as_str(), "{all}");
    assert_eq!(
        server.get("/api/v1/workers")["serving"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

/// Finding 1: a REFER outside a call from an account that has nothing to do with the
/// conference does not make the focus ring anyone.
#[test]
fn strangers_cannot_refer_people_into_a_conference() {
    let server = Server::start();
    let (conf, _) = server.open_conference("alice's");
    let mut bob = Ua::new("bob", server.sip);
    let uri = format!("sip:{conf}@{}", server.sip);
    let refer_to = format!("<sip:carol@{}>", server.sip);
    let (_, resp) = bob.authed(
        "REFER",
        &uri,
        &format!("<{uri}>"),
        &[("Refer-To", &refer_to)],
        "",
        "",
        password("bob"),
    );
    assert_eq!(resp.status, 403, "{resp:?}");
}

/// Findings 1 and 7: a participant who joined with the PIN alone may not make the focus ring
/// people (and so cannot learn which accounts exist): its REFER is challenged for an account's
/// credentials. Joiners are not told the PIN.
#[test]
fn pin_guests_cannot_refer_and_are_not_told_the_pin() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("guests");
    let rtp = RtpPeer::bind("127.0.0.1", 5);
    let mut guest = Ua::new("mallory", server.sip);
    let mut call = guest
        .invite(&server.join_uri(&conf, &pin), &rtp.offer(), None, &[])
        .expect("the PIN lets a guest in");
    assert!(
        call.answer.headers.get_other("X-Conference-PIN").is_none(),
        "a joiner is not told the PIN: {:?}",
        call.answer
    );
    // Finding 9: a guest's name is only what its From claims, and the roster says so.
    let roster: serde_json::Value = server
        .http()
        .get(server.url(&format!("/api/v1/conferences/{conf}/roster")))
        .header("X-Conference-PIN", pin.as_str())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(roster["participants"][0]["guest"], true, "{roster}");
    let refer_to = format!("<sip:carol@{}>", server.sip);
    let resp = guest.request_in_call(&mut call, "REFER", &[("Refer-To", &refer_to)]);
    assert_eq!(resp.status, 401, "{resp:?}");
    assert!(resp.header(&HeaderName::WwwAuthenticate).is_some());
    // Finding 9: Call-ID and To tag are not enough to act in a call; the From tag must match.
    let real_tag = std::mem::replace(&mut call.from_tag, "forged".into());
    assert_eq!(guest.bye(&mut call).status, 481);
    call.from_tag = real_tag;
    assert_eq!(guest.bye(&mut call).status, 200);
}

/// Findings 1 and 4: an invitation carries a token, not the PIN; the token lets its invitee
/// (and only into that conference) join again; the conference's name reaches the phone as a
/// quoted string, never as extra headers.
#[test]
fn invitations_carry_a_token_not_the_pin() {
    let server = Server::start();
    let created: serde_json::Value = server
        .http()
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some(password("alice")))
        .json(&serde_json::json!({"name": "Q\"3\" \\ review"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let conf = created["id"].as_str().unwrap().to_string();
    let (other, _) = server.open_conference("another");
    let rtp = RtpPeer::bind("127.0.0.1", 5);
    let mut dave = Ua::new("dave", server.sip);
    assert_eq!(dave.register(password("dave"), 300).status, 200);
    let http = server.http();
    let url = server.url(&format!("/api/v1/conferences/{conf}/invitations"));
    let inviting = std::thread::spawn(move || {
        http.post(url)
            .basic_auth("alice", Some(password("alice")))
            .json(&serde_json::json!({"users": ["dave", "dave"]}))
            .send()
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap()
    });
    let invite = (0..50)
        .find_map(|_| match dave.recv(Duration::from_millis(200)) {
            Some(convoke::sip::Message::Request(r)) if r.method.as_str() == "INVITE" => Some(r),
            _ => None,
        })
        .expect("the invitation rings dave");
    assert!(invite.headers.get_other("X-Conference-PIN").is_none());
    let token = invite
        .headers
        .get_other("X-Conference-Token")
        .expect("an invitation token")
        .to_string();
    assert_eq!(
        invite
            .header(&HeaderName::From)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .trim(),
        r#""Q\"3\" \\ review""#,
        "the name is a quoted string with quoted-pairs"
    );
    dave.answer_offer(&invite, &rtp.offer());
    let result = inviting.join().unwrap();
    assert_eq!(
        result["results"].as_array().map(Vec::len),
        Some(1),
        "one call per person however often listed: {result}"
    );
    // Join again with the token from another device: in, as dave.
    let mut phone = Ua::new("somebody", server.sip);
    let rejoin = format!("sip:{conf}@{};token={token}", server.sip);
    let mut call = phone
        .invite(&rejoin, &rtp.offer(), None, &[])
        .expect("the token lets the invitee in");
    let roster = server.get(&format!("/api/v1/conferences/{conf}"));
    let users: Vec<_> = roster["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["dave", "dave"], "{roster}");
    assert_eq!(phone.bye(&mut call).status, 200);
    // Not into another conference, and not forged.
    let elsewhere = format!("sip:{other}@{};token={token}", server.sip);
    let refused = phone.invite(&elsewhere, &rtp.offer(), None, &[]).err();
    assert_eq!(refused.map(|r| r.status), Some(403));
    let forged = format!(
        "sip:{conf}@{};token={}x",
        server.sip,
        &token[..token.len() - 1]
    );
    let refused = phone.invite(&forged, &rtp.offer(), None, &[]).err();
    assert_eq!(refused.map(|r| r.status), Some(403));
}

/// Finding 2: PINs are guessed through the roster no faster than through SIP, and the page's
/// API takes PINs in a header, not in the URL.
#[test]
fn pin_guessing_over_http_is_throttled() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("roster");
    let http = server.http();
    let url = server.url(&format!("/api/v1/conferences/{conf}/roster"));
    let with_pin = |p: &str| status(http.get(&url).header("X-Conference-PIN", p));
    assert_eq!(with_pin(&pin), 200);
    assert_eq!(
        status(http.get(format!("{url}?pin={pin}"))),
        401,
        "a PIN in the URL is not a credential"
    );
    for guess in 0..5 {
        assert_eq!(with_pin(&format!("9{guess:05}")), 403);
    }
    assert_eq!(with_pin("999999"), 429, "the sixth guess is throttled");
    assert_eq!(with_pin(&pin), 429, "even the right PIN waits");
    // Another address is not locked out.
    let elsewhere = client_from("127.0.0.2");
    assert_eq!(
        status(elsewhere.get(&url).header("X-Conference-PIN", pin.as_str())),
        200
    );
}

/// Findings 2 and 3: passwords over HTTP Basic share the SIP throttle, and failures from one
/// address do not lock the account out from another.
#[test]
fn password_guessing_is_throttled_across_sip_and_http_per_source() {
    let server = Server::start();
    let attacker = client_from("127.0.0.1");
    let url = server.url("/api/v1/conferences");
    for _ in 0..5 {
        assert_eq!(
            status(attacker.get(&url).basic_auth("bob", Some("guess"))),
            401
        );
    }
    assert_eq!(
        status(attacker.get(&url).basic_auth("bob", Some("guess"))),
        429
    );
    assert_eq!(
        status(attacker.get(&url).basic_auth("bob", Some(password("bob")))),
        429,
        "the guesser's address waits even with the right password"
    );
    // The same throttle over SIP: a REGISTER from the guesser's address waits too.
    let mut ua = Ua::new("bob", server.sip);
    let blocked = ua.register(password("bob"), 60);
    assert_eq!(blocked.status, 503);
    assert!(blocked.header(&HeaderName::RetryAfter).is_some());
    // Bob at another address is not locked out.
    let bob = client_from("127.0.0.3");
    assert_eq!(
        status(bob.get(&url).basic_auth("bob", Some(password("bob")))),
        200
    );
}

/// Finding 4: a conference name with CR/LF is refused at entry.
#[test]
fn names_with_control_characters_are_refused() {
    let server = Server::start();
    for name in [
        "x\r\nAlert-Info: <http://127.0.0.1/>;info=alert-autoanswer",
        "bell\u{7}",
        &"long".repeat(30),
    ] {
        let r = server
            .http()
            .post(server.url("/api/v1/conferences"))
            .basic_auth("alice", Some(password("alice")))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{name:?}");
    }
    let (conf, _) = server.open_conference("fine");
    let r = server
        .http()
        .post(server.url(&format!("/api/v1/conferences/{conf}/invitations")))
        .basic_auth("alice", Some(password("alice")))
        .json(&serde_json::json!({ "users": ["bob\r\nAlert-Info: <http://x/>"] }))
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "invitees are checked at entry too"
    );
}

/// Finding 7: one REGISTER cannot make hundreds of bindings (each a leg of every invitation).
#[test]
fn bindings_per_address_are_capped() {
    let server = Server::start();
    let mut ua = Ua::new("carol", server.sip);
    let contacts: Vec<String> = (0..12)
        .map(|i| format!("<sip:carol@127.0.0.1:{}>", 40000 + i))
        .collect();
    let headers: Vec<(&str, &str)> = contacts.iter().map(|c| ("Contact", c.as_str())).collect();
    let aor = format!("<sip:carol@{}>", server.sip);
    let (_, resp) = ua.authed(
        "REGISTER",
        &format!("sip:{}", server.sip),
        &aor,
        &headers,
        "",
        "",
        password("carol"),
    );
    assert_eq!(resp.status, 403, "{resp:?}");
    assert_eq!(ua.register(password("carol"), 60).status, 200);
}

/// Finding 9: digest credentials are bound to the Request-URI they were made for.
#[test]
fn digest_credentials_for_another_uri_are_refused() {
    let server = Server::start();
    let ua = Ua::new("bob", server.sip);
    let local = ua.socket.local_addr().unwrap();
    let register = |auth: Option<&str>, cseq: u32| {
        let mut text = format!(
            "REGISTER sip:{s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKuri{cseq};rport\r\n\
From: <sip:bob@{s}>;tag=t1\r\nTo: <sip:bob@{s}>\r\nCall-ID: uri-check\r\nCSeq: {cseq} REGISTER\r\n\
Contact: <sip:bob@{local}>\r\nMax-Forwards: 70\r\nExpires: 60\r\n",
            s = server.sip
        );
        if let Some(a) = auth {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        ua.send_raw(text.as_bytes());
        loop {
            match ua.recv(Duration::from_secs(5)) {
                Some(convoke::sip::Message::Response(r)) if r.status >= 200 => return r,
                Some(_) => continue,
                None => panic!("no answer to REGISTER"),
            }
        }
    };
    let challenge = register(None, 1);
    assert_eq!(challenge.status, 401);
    let ch = parse_challenge(challenge.header(&HeaderName::WwwAuthenticate).unwrap()).unwrap();
    let other_uri = format!("sip:someconf@{}", server.sip);
    let auth = authorize(&ch, "bob", password("bob"), "REGISTER", &other_uri, 1, "cn");
    assert_eq!(register(Some(&auth), 2).status, 403);
}

/// Finding 9: the database (HA1 hashes, PINs) is readable by the server's user only.
#[test]
fn the_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    server.open_conference("anything");
    let mode = std::fs::metadata(server.data.path().join("convoke.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

/// Finding 9: `user add` does not take the password on the command line.
#[test]
fn passwords_never_go_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_convoke"))
        .args(["user", "add", "eve", "--password", "pw", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    common::add_account(dir.path(), "eve", "from stdin", &[]);
}

/// Finding 9: the page carries security headers, a cross-site page cannot open SIP over
/// WebSocket with the visitor's browser, and a body-less (form-like) POST creates nothing.
#[test]
fn the_browser_side_is_closed_to_other_sites() {
    let server = Server::start();
    let page = server.http().get(server.url("/")).send().unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");

    let upgrade = |origin: &str| {
        let mut s = TcpStream::connect(server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /sip HTTP/1.1\r\nHost: {h}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Protocol: sip\r\nOrigin: {origin}\r\n\r\n",
            h = server.http
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head[9..12]).to_string()
    };
    assert_eq!(upgrade("http://evil.example"), "403");
    assert_eq!(upgrade(&format!("http://{}", server.http)), "101");

    let bodyless = server
        .http()
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some(password("alice")))
        .send()
        .unwrap();
    assert_eq!(bodyless.status().as_u16(), 415);
    let form = server
        .http()
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some(password("alice")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=x")
        .send()
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    assert_eq!(
        server.get("/api/v1/conferences")["conferences"],
        serde_json::json!([])
    );
    // The operator account the harness reads with is what /status needs.
    assert!(server.get("/api/v1/status")["transactions"].is_number());
}

/// Finding 7: a refused INVITE from an unverified UDP source is answered once, not eleven times
/// (each copy would go to whoever the source address really is).
#[test]
fn refusals_are_not_amplified() {
    let server = Server::start();
    let ua = Ua::new("spoofed", server.sip);
    let local = ua.socket.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:nosuchconf@{s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKamp1\r\n\
From: <sip:victim@{s}>;tag=v1\r\nTo: <sip:nosuchconf@{s}>\r\nCall-ID: amplify\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:victim@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s = server.sip
    );
    ua.send_raw(invite.as_bytes());
    let mut finals = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        if let Some(convoke::sip::Message::Response(r)) = ua.recv(Duration::from_millis(200)) {
            if r.status >= 300 {
                finals += 1;
            }
        }
    }
    assert_eq!(finals, 1, "one answer for one request");
}

/// Finding 5: a join whose SDP names someone else's address (a third party that never sent
/// anything) gets at most a bounded few packets sent there, however long the call lasts.
#[test]
fn media_is_not_aimed_at_addresses_that_sent_nothing() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("reflector");
    let victim = RtpPeer::bind("127.0.0.1", 99);
    let mut attacker = Ua::new("mallory", server.sip);
    let mut aimed = attacker
        .invite(&server.join_uri(&conf, &pin), &victim.offer(), None, &[])
        .expect("the join itself is fine");
    let mut talker_rtp = RtpPeer::bind("127.0.0.1", 7);
    let mut talker = Ua::new("bob", server.sip);
    let mut call = talker
        .invite(
            &server.join_uri(&conf, &pin),
            &talker_rtp.offer(),
            None,
            &[],
        )
        .expect("bob joins");
    let port = SocketAddr::from(([127, 0, 0, 1], call.media_port()));
    for _ in 0..150 {
        talker_rtp.send(port);
        std::thread::sleep(Duration::from_millis(20));
    }
    let got: u64 = victim.received().values().sum();
    assert!(
        got <= 25,
        "{got} packets reached an address that never sent anything"
    );
    assert!(
        talker_rtp.received().values().sum::<u64>() > 0 || got > 0,
        "the conference was sending at all"
    );
    assert_eq!(talker.bye(&mut call).status, 200);
    assert_eq!(attacker.bye(&mut aimed).status, 200);
}

/// Finding 5: a conference takes a bounded number of participants (`--max-participants`).
#[test]
fn a_full_conference_refuses_joins() {
    let server = Server::start_with(&["--max-participants", "2"]);
    let (conf, pin) = server.open_conference("small");
    let mut calls = Vec::new();
    for n in 0..2 {
        let rtp = RtpPeer::bind("127.0.0.1", n);
        let mut ua = Ua::new("guest", server.sip);
        let call = ua
            .invite(&server.join_uri(&conf, &pin), &rtp.offer(), None, &[])
            .expect("room for two");
        calls.push((ua, call, rtp));
    }
    let rtp = RtpPeer::bind("127.0.0.1", 3);
    let mut third = Ua::new("guest", server.sip);
    let refused = third
        .invite(&server.join_uri(&conf, &pin), &rtp.offer(), None, &[])
        .err()
        .map(|r| r.status);
    assert_eq!(refused, Some(486));
    for (mut ua, mut call, _) in calls {
        assert_eq!(ua.bye(&mut call).status, 200);
    }
}

/// Finding 5: a call that sends no media is hung up after the media timeout; one on hold is not.
#[test]
fn silent_calls_are_hung_up() {
    let server = Server::start_with(&["--media-timeout", "2"]);
    let (conf, pin) = server.open_conference("quiet");
    let silent_rtp = RtpPeer::bind("127.0.0.1", 1);
    let mut silent = Ua::new("silent", server.sip);
    let _call = silent
        .invite(
            &server.join_uri(&conf, &pin),
            &silent_rtp.offer(),
            None,
            &[],
        )
        .expect("joins");
    let held_rtp = RtpPeer::bind("127.0.0.1", 2);
    let mut held = Ua::new("held", server.sip);
    let mut held_call = held
        .invite(&server.join_uri(&conf, &pin), &held_rtp.offer(), None, &[])
        .expect("joins");
    let on_hold = held_rtp
        .offer()
        .replace("a=rtcp-mux", "a=rtcp-mux\r\na=sendonly");
    assert_eq!(held.reinvite(&mut held_call, &on_hold).status, 200);
    let bye = silent.await_request("BYE", "", Duration::from_secs(6));
    assert!(bye.is_some(), "the silent call was hung up");
    std::thread::sleep(Duration::from_secs(1));
    let roster = server.get(&format!("/api/v1/conferences/{conf}"));
    let users: Vec<_> = roster["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user"].clone())
        .collect();
    assert_eq!(users, ["held"], "the call on hold stays: {roster}");
    assert_eq!(held.bye(&mut held_call).status, 200);
}

/// Finding 8: one account cannot start conferences until every media port is taken.
#[test]
fn an_account_has_a_quota_of_live_conferences() {
    let server = Server::start_with(&["--max-live-per-account", "1"]);
    let (first, first_pin) = server.open_conference("one");
    let (second, second_pin) = server.open_conference("two");
    let rtp = RtpPeer::bind("127.0.0.1", 1);
    let mut ua = Ua::new("guest", server.sip);
    let mut call = ua
        .invite(
            &server.join_uri(&first, &first_pin),
            &rtp.offer(),
            None,
            &[],
        )
        .expect("the first conference starts");
    let refused = ua
        .invite(
            &server.join_uri(&second, &second_pin),
            &rtp.offer(),
            None,
            &[],
        )
        .err()
        .map(|r| r.status);
    assert_eq!(refused, Some(403), "alice's second live conference");
    assert_eq!(ua.bye(&mut call).status, 200);
}

/// Finding 8: SIP over TCP bounds connections per address and closes a connection that says
/// nothing.
#[test]
fn tcp_connections_are_bounded_and_silent_ones_closed() {
    let server = Server::start();
    let open = |n: usize| -> Vec<TcpStream> {
        (0..n)
            .map(|_| TcpStream::connect(server.sip).unwrap())
            .collect()
    };
    let held = open(64);
    let mut extra = TcpStream::connect(server.sip).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        extra.read(&mut byte).unwrap_or(0),
        0,
        "the 65th connection from one address is closed at once"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut silent = TcpStream::connect(server.sip).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let started = std::time::Instant::now();
    let n = silent.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0, "closed, not answered");
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(25)..Duration::from_secs(38)).contains(&waited),
        "a connection that never sends a message is closed after 30 s, not {waited:?}"
    );
}

/// Finding 5: one address cannot fill the server with calls (`--max-calls-per-source`); another
/// address still gets in.
#[test]
fn calls_per_source_address_are_capped() {
    let server = Server::start_with(&["--max-calls-per-source", "2"]);
    let (conf, pin) = server.open_conference("crowded");
    let uri = server.join_uri(&conf, &pin);
    let rtp = RtpPeer::bind("127.0.0.1", 1);
    let mut calls = Vec::new();
    for _ in 0..2 {
        let mut ua = Ua::new("guest", server.sip);
        let call = ua.invite(&uri, &rtp.offer(), None, &[]).expect("joins");
        calls.push((ua, call));
    }
    let mut third = Ua::new("guest", server.sip);
    let refused = third.invite(&uri, &rtp.offer(), None, &[]).err();
    assert_eq!(refused.map(|r| r.status), Some(403));
    let mut elsewhere = Ua::new_from("guest", server.sip, "127.0.0.2");
    let other_rtp = RtpPeer::bind("127.0.0.2", 2);
    let mut call = elsewhere
        .invite(&uri, &other_rtp.offer(), None, &[])
        .expect("another address joins");
    assert_eq!(elsewhere.bye(&mut call).status, 200);
    for (mut ua, mut call) in calls {
        assert_eq!(ua.bye(&mut call).status, 200);
    }
}

/// Finding 7: an account cannot make the focus ring people without limit.
#[test]
fn invitations_are_rate_limited_per_account() {
    let server = Server::start_with(&["--invitations-per-minute", "2"]);
    let (conf, _) = server.open_conference("invites");
    let url = server.url(&format!("/api/v1/conferences/{conf}/invitations"));
    let invite = |users: serde_json::Value| {
        status(
            server
                .http()
                .post(&url)
                .basic_auth("alice", Some(password("alice")))
                .json(&serde_json::json!({ "users": users })),
        )
    };
    assert_eq!(invite(serde_json::json!(["bob", "carol", "dave"])), 429);
    assert_eq!(invite(serde_json::json!(["bob", "carol"])), 200);
    assert_eq!(invite(serde_json::json!(["dave"])), 429);
}

/// Finding 8: a half-sent HTTP request does not hold a connection open.
#[test]
fn half_sent_http_requests_are_closed() {
    let server = Server::start();
    let mut s = TcpStream::connect(server.http).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    // hyper answers 408 or just closes; either way within the header timeout (10 s).
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(waited < Duration::from_secs(15), "closed after {waited:?}");
}

/// Finding 8: a refused join does not start (or keep) a worker and its ports: what can be
/// decided without the worker is decided before it starts.
#[test]
fn refused_joins_do_not_keep_workers_running() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("never joined");
    let only_g729 = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let mut ua = Ua::new("guest", server.sip);
    let refused = ua
        .invite(&server.join_uri(&conf, &pin), only_g729, None, &[])
        .err()
        .map(|r| r.status);
    assert_eq!(refused, Some(488));
    let serving = |s: &Server| {
        s.get("/api/v1/workers")["serving"]
            .as_array()
            .unwrap()
            .len()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while serving(&server) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        serving(&server),
        0,
        "the worker was released well before --idle-park"
    );
}
