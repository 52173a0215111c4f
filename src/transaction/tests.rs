//! RFC 3261 §17 figures 5–8 driven with simulated time. Each test advances a fake clock and
//! asserts on what the layer transmits and reports.

use super::*;
use crate::sip::parse_message;
use crate::transport::peer::{Peer, Transport};

const PEER: &str = "127.0.0.1:5070";

fn peer() -> Peer {
    Peer::udp(PEER.parse().unwrap())
}

fn tcp_peer() -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: PEER.parse().unwrap(),
        connection: Some(1),
    }
}

fn msg(s: &str) -> Message {
    parse_message(Bytes::copy_from_slice(s.as_bytes())).unwrap()
}

fn request(method: &str, branch: &str, to_tag: &str) -> Request {
    let to = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let m = msg(&format!(
        "{method} sip:conference@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:conference@127.0.0.1>{to}\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\r\n"
    ));
    match m {
        Message::Request(r) => r,
        _ => unreachable!(),
    }
}

fn response_to(req: &Request, status: u16) -> Message {
    Message::Response(Response::for_request(req, status, "X").with_to_tag("b2"))
}

fn drain(l: &mut TransactionLayer) -> Vec<Output> {
    std::iter::from_fn(|| l.poll_output()).collect()
}

fn transmitted(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transmit { data, .. } => Some(
                String::from_utf8_lossy(data)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => None,
        })
        .collect()
}

/// A server INVITE transaction that the TU answered 200 at `t0`, outputs drained.
fn answered_invite(branch: &str, from: Peer) -> (TransactionLayer, Instant, Request) {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = request("INVITE", branch, "");
    l.handle_message(Message::Request(inv.clone()), from, t0);
    let tx = tu_request(drain(&mut l));
    l.respond(
        tx,
        Response::for_request(&inv, 200, "OK").with_to_tag("t"),
        t0,
    );
    drain(&mut l);
    (l, t0, inv)
}

/// The transaction of the request handed to the TU.
fn tu_request(out: Vec<Output>) -> TxId {
    out.into_iter()
        .find_map(|o| match o {
            Output::Request { tx, .. } => Some(tx),
            _ => None,
        })
        .expect("the TU was given the request")
}

/// Runs all timers up to `until`, returning the times at which something was transmitted.
fn run_until(
    l: &mut TransactionLayer,
    start: Instant,
    until: Duration,
) -> Vec<(Duration, Vec<Output>)> {
    let mut log = Vec::new();
    while let Some(at) = l.poll_timeout() {
        if at > start + until {
            break;
        }
        l.handle_timeout(at);
        let out = drain(l);
        if !out.is_empty() {
            log.push((at - start, out));
        }
    }
    log
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn client_invite_timer_a_doubles_and_b_times_out() {
    // Figure 5: Calling, retransmit at T1, 2T1, 4T1, ... until timer B (64·T1).
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let id = l.send_request(request("INVITE", "z9hG4bKa", ""), peer(), t0);
    assert_eq!(
        transmitted(&drain(&mut l)),
        vec!["INVITE sip:conference@127.0.0.1 SIP/2.0"]
    );
    let log = run_until(&mut l, t0, Duration::from_secs(40));
    let times: Vec<u64> = log.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500, 32000]);
    assert!(matches!(log.last().unwrap().1[..], [Output::Timeout { tx }] if tx == id));
    assert!(l.is_empty());
}

#[test]
fn client_invite_non_2xx_is_acked_and_absorbed() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKb", "");
    l.send_request(inv.clone(), peer(), t0);
    drain(&mut l);
    l.handle_message(response_to(&inv, 180), peer(), t0 + ms(100));
    assert!(
        matches!(drain(&mut l)[..], [Output::Response { ref response, .. }] if response.status == 180)
    );
    // Proceeding: no more retransmissions.
    assert!(run_until(&mut l, t0, Duration::from_secs(5)).is_empty());
    l.handle_message(response_to(&inv, 486), peer(), t0 + Duration::from_secs(6));
    let out = drain(&mut l);
    assert_eq!(
        transmitted(&out),
        vec!["ACK sip:conference@127.0.0.1 SIP/2.0"]
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Response { response, .. } if response.status == 486)));
    // A retransmitted 486 is ACKed again, not passed up.
    l.handle_message(response_to(&inv, 486), peer(), t0 + Duration::from_secs(7));
    assert_eq!(
        transmitted(&drain(&mut l)),
        vec!["ACK sip:conference@127.0.0.1 SIP/2.0"]
    );
    // Timer D (32 s) ends it.
    run_until(&mut l, t0, Duration::from_secs(60));
    assert!(l.is_empty());
}

#[test]
fn client_non_invite_timer_e_caps_at_t2() {
    // Figure 6: E doubles up to T2 = 4 s; F at 64·T1.
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    l.send_request(request("NOTIFY", "z9hG4bKc", "x"), peer(), t0);
    drain(&mut l);
    let log = run_until(&mut l, t0, Duration::from_secs(40));
    let times: Vec<u64> = log.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(&times[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
    assert!(matches!(
        log.last().unwrap().1.last(),
        Some(Output::Timeout { .. })
    ));
    assert!(l.is_empty());
}

#[test]
fn a_full_table_sheds_new_requests_with_503_and_keeps_room_for_calls_in_progress() {
    // Four places: new work takes three, the last is for requests in dialogs.
    let mut l = TransactionLayer::with_capacity(TimerConfig::default(), 4);
    let t0 = Instant::now();
    for n in 0..3 {
        let mut r = request("OPTIONS", &format!("z9hG4bKc{n}"), "");
        r.headers.set(HeaderName::CallId, format!("c{n}"));
        l.handle_message(Message::Request(r), peer(), t0);
        let _ = tu_request(drain(&mut l));
    }
    let mut another = request("INVITE", "z9hG4bKc3", "");
    another.headers.set(HeaderName::CallId, "c3");
    l.handle_message(Message::Request(another), peer(), t0);
    let out = drain(&mut l);
    assert_eq!(
        transmitted(&out),
        vec!["SIP/2.0 503 Service Unavailable (Overloaded)"]
    );
    assert_eq!(l.len(), 3, "no state for the refused request");
    // A BYE of an existing call still gets its transaction.
    let mut bye = request("BYE", "z9hG4bKc4", "dialog");
    bye.headers.set(HeaderName::CallId, "c4");
    l.handle_message(Message::Request(bye), peer(), t0);
    let _ = tu_request(drain(&mut l));
    assert_eq!(l.len(), 4);
    let mut full = request("BYE", "z9hG4bKc5", "dialog");
    full.headers.set(HeaderName::CallId, "c5");
    l.handle_message(Message::Request(full), peer(), t0);
    assert_eq!(
        transmitted(&drain(&mut l)),
        vec!["SIP/2.0 503 Service Unavailable (Overloaded)"]
    );
}

#[test]
fn a_refused_initial_invite_is_answered_once_per_request() {
    // No amplification towards an unverified UDP source: the refusal goes out once, and a
    // retransmitted INVITE gets it once more.
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKr", "");
    l.handle_message(Message::Request(inv.clone()), peer(), t0);
    let tx = tu_request(drain(&mut l));
    l.respond(
        tx,
        Response::for_request(&inv, 403, "Forbidden").with_to_tag("t"),
        t0 + ms(5),
    );
    assert_eq!(transmitted(&drain(&mut l)), vec!["SIP/2.0 403 Forbidden"]);
    assert!(
        run_until(&mut l, t0, Duration::from_secs(10)).is_empty(),
        "no timer G copies"
    );
    l.handle_message(Message::Request(inv.clone()), peer(), t0 + ms(10_500));
    assert_eq!(transmitted(&drain(&mut l)), vec!["SIP/2.0 403 Forbidden"]);
    run_until(&mut l, t0, Duration::from_secs(40));
    assert!(l.is_empty());
}

#[test]
fn server_invite_non_2xx_retransmits_until_ack() {
    // Figure 7: 100 Trying if the TU is slow; a final response to a re-INVITE is repeated (G)
    // until ACK, then timer I.
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKd", "theirs");
    l.handle_message(Message::Request(inv.clone()), peer(), t0);
    let out = drain(&mut l);
    assert!(
        transmitted(&out).is_empty(),
        "no 100 while the TU may still answer quickly"
    );
    let tx = tu_request(out);
    let log = run_until(&mut l, t0, Duration::from_millis(250));
    assert_eq!(transmitted(&log[0].1), vec!["SIP/2.0 100 Trying"]);
    assert_eq!(log[0].0, TRYING_DELAY);
    // A retransmitted INVITE repeats the last response, and does not reach the TU again.
    l.handle_message(Message::Request(inv.clone()), peer(), t0 + ms(10));
    assert_eq!(transmitted(&drain(&mut l)), vec!["SIP/2.0 100 Trying"]);
    l.respond(
        tx,
        Response::for_request(&inv, 404, "Not Found").with_to_tag("t"),
        t0 + ms(20),
    );
    assert_eq!(transmitted(&drain(&mut l)), vec!["SIP/2.0 404 Not Found"]);
    let log = run_until(&mut l, t0 + ms(20), Duration::from_millis(1600));
    let times: Vec<u64> = log.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(times, vec![500, 1500]);
    let mut ack = inv.clone();
    ack.method = Method::Ack;
    ack.headers.set(HeaderName::CSeq, "1 ACK");
    l.handle_message(Message::Request(ack.clone()), peer(), t0 + ms(1700));
    assert!(
        drain(&mut l).is_empty(),
        "ACK for a non-2xx is absorbed by the transaction"
    );
    assert!(run_until(&mut l, t0, Duration::from_secs(4)).is_empty());
    run_until(&mut l, t0, Duration::from_secs(10));
    assert!(l.is_empty());
}

#[test]
fn server_invite_2xx_retransmits_until_its_ack() {
    let (mut l, t0, inv) = answered_invite("z9hG4bKe", peer());
    let log = run_until(&mut l, t0, Duration::from_millis(3600));
    assert_eq!(log.len(), 3);
    // The ACK for a 2xx has a new branch; it is matched by Call-ID, CSeq and From tag.
    let ack = request("ACK", "z9hG4bKnew", "t");
    l.handle_message(Message::Request(ack), peer(), t0 + Duration::from_secs(4));
    assert!(matches!(drain(&mut l)[..], [Output::Ack { .. }]));
    // RFC 6026: a late retransmission of the INVITE is absorbed, not a new call...
    l.handle_message(Message::Request(inv), peer(), t0 + Duration::from_secs(5));
    assert!(drain(&mut l).is_empty());
    // ...until timer L (64·T1 after the ACK) ends the transaction; no retransmission before.
    let log = run_until(&mut l, t0, Duration::from_secs(40));
    assert!(log.is_empty(), "nothing is sent after the ACK");
    assert!(l.is_empty());
}

#[test]
fn server_invite_2xx_without_ack_times_out() {
    let (mut l, t0, _) = answered_invite("z9hG4bKf", tcp_peer());
    // Over TCP there is no retransmission, only the 64·T1 guard.
    let log = run_until(&mut l, t0, Duration::from_secs(40));
    assert_eq!(log.len(), 1);
    assert!(matches!(log[0].1[..], [Output::Timeout { .. }]));
    assert_eq!(log[0].0, Duration::from_secs(32));
}

#[test]
fn server_non_invite_absorbs_then_repeats() {
    // Figure 8: Trying absorbs retransmissions; Completed repeats the final; J = 64·T1.
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let reg = request("REGISTER", "z9hG4bKg", "");
    l.handle_message(Message::Request(reg.clone()), peer(), t0);
    let tx = tu_request(drain(&mut l));
    l.handle_message(Message::Request(reg.clone()), peer(), t0 + ms(500));
    assert!(drain(&mut l).is_empty());
    l.respond(
        tx,
        Response::for_request(&reg, 401, "Unauthorized").with_to_tag("t"),
        t0 + ms(600),
    );
    drain(&mut l);
    l.handle_message(Message::Request(reg), peer(), t0 + ms(1000));
    assert_eq!(
        transmitted(&drain(&mut l)),
        vec!["SIP/2.0 401 Unauthorized"]
    );
    run_until(&mut l, t0, Duration::from_secs(31));
    assert_eq!(l.len(), 1);
    run_until(&mut l, t0, Duration::from_secs(33));
    assert!(l.is_empty());
}

#[test]
fn cancel_answers_200_and_487() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKh", "");
    l.handle_message(Message::Request(inv.clone()), peer(), t0);
    let tx = tu_request(drain(&mut l));
    l.handle_message(
        Message::Request(request("CANCEL", "z9hG4bKh", "")),
        peer(),
        t0 + ms(50),
    );
    let out = drain(&mut l);
    assert_eq!(
        transmitted(&out),
        vec!["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Cancelled { tx: t } if *t == tx)));
    // The TU's late answer is dropped.
    l.respond(tx, Response::for_request(&inv, 200, "OK"), t0 + ms(60));
    assert!(drain(&mut l).is_empty());
    // CANCEL for nothing: 481.
    let mut stray = request("CANCEL", "z9hG4bKzz", "");
    stray.headers.set(HeaderName::CallId, "other");
    l.handle_message(Message::Request(stray), peer(), t0 + ms(70));
    assert_eq!(
        transmitted(&drain(&mut l)),
        vec!["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
}

#[test]
fn merged_request_gets_482() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    l.handle_message(
        Message::Request(request("MESSAGE", "z9hG4bK1", "")),
        peer(),
        t0,
    );
    assert_eq!(drain(&mut l).len(), 1);
    l.handle_message(
        Message::Request(request("MESSAGE", "z9hG4bK2", "")),
        peer(),
        t0,
    );
    assert_eq!(
        transmitted(&drain(&mut l)),
        vec!["SIP/2.0 482 Loop Detected"]
    );
}

#[test]
fn stray_responses_are_dropped() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.handle_message(
        response_to(&request("INVITE", "z9hG4bKq", ""), 200),
        peer(),
        Instant::now(),
    );
    assert!(drain(&mut l).is_empty());
    assert!(l.is_empty());
}

#[test]
fn cancel_of_client_invite() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKr", "");
    let id = l.send_request(inv.clone(), peer(), t0);
    drain(&mut l);
    l.handle_message(response_to(&inv, 180), peer(), t0);
    drain(&mut l);
    l.cancel(id, t0).unwrap();
    let out = drain(&mut l);
    let first = transmitted(&out);
    assert_eq!(first, vec!["CANCEL sip:conference@127.0.0.1 SIP/2.0"]);
}

#[test]
fn a_new_call_can_be_refused_at_the_door_and_nothing_else_is() {
    let invite = request("INVITE", "z9hG4bKdoor", "");
    let busy = super::refuse_new_call(&invite.to_bytes()).expect("a new INVITE is refused");
    let text = String::from_utf8_lossy(&busy);
    assert!(
        text.starts_with("SIP/2.0 503 Service Unavailable (Overloaded)\r\n"),
        "{text}"
    );
    assert!(text.contains("Retry-After: 5\r\n"), "{text}");
    assert!(
        text.contains("branch=z9hG4bKdoor"),
        "the client can match it: {text}"
    );
    // A re-INVITE, a BYE and a response belong to calls that exist: never refused here.
    let reinvite = request("INVITE", "z9hG4bKre", "dialog");
    assert!(super::refuse_new_call(&reinvite.to_bytes()).is_none());
    let bye = request("BYE", "z9hG4bKbye", "dialog");
    assert!(super::refuse_new_call(&bye.to_bytes()).is_none());
    assert!(super::refuse_new_call(b"INVITE garbage").is_none());
}
