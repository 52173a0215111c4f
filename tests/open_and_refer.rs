//! Opening without media (MESSAGE to the factory URI) and inviting with a REFER sent outside any
//! call (RFC 4579 §5.5), which creates a subscription dialog of its own.

mod common;

use common::ua::Ua;
use common::{finish_sipp, password, sipp_invitee, Server};
use convoke::sip::{HeaderName, SipHeaders};
use std::time::Duration;

#[test]
fn message_to_the_factory_opens_a_conference() {
    let server = Server::start();
    let mut ua = Ua::new("alice", server.sip);
    let factory = format!("sip:conference@{}", server.sip);
    let (_, resp) = ua.authed(
        "MESSAGE",
        &factory,
        &format!("<{factory}>"),
        &[("Subject", "Chat only"), ("X-Conference-PIN", "2468")],
        "text/plain",
        "open please",
        password("alice"),
    );
    assert_eq!(resp.status, 200);
    let id = resp
        .headers
        .get_other("X-Conference-ID")
        .expect("conference ID header")
        .to_string();
    assert_eq!(
        resp.headers
            .get_other("X-Conference-Name")
            .map(|v| v.as_str()),
        Some("Chat only")
    );
    assert_eq!(
        resp.headers
            .get_other("X-Conference-PIN")
            .map(|v| v.as_str()),
        Some("2468")
    );
    let contact = resp.header(&HeaderName::Contact).unwrap();
    assert!(
        contact.contains(&format!("sip:{id}@")) && contact.ends_with(";isfocus"),
        "{contact}"
    );
    // The row exists (it was written before the answer).
    let row = server.get(&format!("/api/v1/conferences/{id}"));
    assert_eq!(row["owner"], "alice");
    // Wrong password: refused.
    let mut mallory = Ua::new("alice", server.sip);
    let (_, resp) = mallory.authed(
        "MESSAGE",
        &factory,
        &format!("<{factory}>"),
        &[],
        "text/plain",
        "x",
        "nope",
    );
    assert_eq!(resp.status, 403);
}

#[test]
fn refer_outside_a_call_dials_out_and_notifies() {
    let server = Server::start();
    let (conf, _) = server.open_conference("REFER from outside");
    let bob = sipp_invitee(&server, "bob");
    // The owner REFERs from outside any call (a stranger gets 403: tests/security.rs).
    let mut carol = Ua::new("alice", server.sip);
    let conf_uri = format!("sip:{conf}@{}", server.sip);
    let refer_to = format!("<sip:bob@{}>", server.sip);
    let (_, resp) = carol.authed(
        "REFER",
        &conf_uri,
        &format!("<{conf_uri}>"),
        &[("Refer-To", &refer_to)],
        "",
        "",
        password("alice"),
    );
    assert_eq!(resp.status, 202);
    let to_tag = resp
        .header_to()
        .and_then(|t| t.tag().map(str::to_string))
        .expect("202 creates the dialog");
    let trying = carol
        .await_request("NOTIFY", "SIP/2.0 100", Duration::from_secs(5))
        .expect("NOTIFY 100 Trying");
    assert_eq!(trying.header(&HeaderName::Event), Some("refer"));
    assert!(trying.content_type() == Some("message/sipfrag"));
    assert_eq!(
        trying.header_from().unwrap().tag(),
        Some(to_tag.as_str()),
        "NOTIFY is in the REFER's dialog"
    );
    let done = carol
        .await_request("NOTIFY", "SIP/2.0 200 OK", Duration::from_secs(15))
        .expect("final NOTIFY");
    assert!(done
        .header(&HeaderName::SubscriptionState)
        .unwrap()
        .starts_with("terminated"));
    finish_sipp(bob, Duration::from_secs(30)).assert_ok("bob was dialled");
    // A REFER to a conference that does not exist is 404.
    let (_, resp) = carol.authed(
        "REFER",
        &format!("sip:nosuchconf@{}", server.sip),
        "<sip:x@y>",
        &[("Refer-To", &refer_to)],
        "",
        "",
        password("alice"),
    );
    assert_eq!(resp.status, 404);
}
