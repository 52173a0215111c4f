//! SIGTERM drains: new calls get 503 with Retry-After, running calls get the drain time to
//! end, then the focus says BYE and the server exits cleanly.

mod common;

use common::rtp::RtpPeer;
use common::ua::Ua;
use common::Server;
use convoke::sip::{HeaderName, SipHeaders};
use std::time::{Duration, Instant};

#[test]
fn sigterm_refuses_new_calls_then_ends_the_running_ones() {
    let mut server = Server::start_with(&["--drain-time", "2"]);
    let (conf, pin) = server.open_conference("last call");
    let uri = server.join_uri(&conf, &pin);
    let rtp = RtpPeer::bind("127.0.0.1", 1);
    let mut running = Ua::new("alice", server.sip);
    let _call = running
        .invite(&uri, &rtp.offer(), None, &[])
        .expect("joins before the shutdown");
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let mut late = Ua::new("bob", server.sip);
    let Err(refused) = late.invite(&uri, &rtp.offer(), None, &[]) else {
        panic!("a new call was taken while draining");
    };
    assert_eq!(refused.status, 503);
    assert!(refused.header(&HeaderName::RetryAfter).is_some());
    let bye = running.await_request("BYE", "", Duration::from_secs(6));
    assert!(bye.is_some(), "the running call ended with BYE");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "the call had its drain time: {waited:?}"
    );
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.map(|s| s.success()), Some(true), "a clean exit");
}
