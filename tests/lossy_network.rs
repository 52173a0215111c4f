//! 1000 SIPp join/leave calls through a relay that loses 10 % of datagrams and delays them
//! 50 ms ± 20 ms, each way. Every call must complete, and afterwards the server must hold no
//! transaction and no dialog.

mod common;

use common::relay::LossyRelay;
use common::{finish_sipp, spawn_sipp_to, Server};
use std::time::{Duration, Instant};

#[test]
fn a_thousand_joins_through_loss_and_delay() {
    // T1 = 250 ms keeps the final drain (64·T1) short; the relay's RTT is ~100 ms.
    let server = Server::start_with(&[&["--t1-ms", "250"], common::load::LOAD_LIMITS].concat());
    let (conf, pin) = server.open_conference("lossy");
    let relay = LossyRelay::start(
        server.sip,
        0.10,
        Duration::from_millis(50),
        Duration::from_millis(20),
    );
    let port = common::free_sip_port().to_string();
    let run = spawn_sipp_to(
        &relay.addr.to_string(),
        "join_bench.xml",
        &[
            "-s", "carol", "-key", "conf", &conf, "-key", "pin", &pin, "-m", "1000", "-r", "50",
            "-l", "200", "-p", &port,
        ],
    );
    let sipp = finish_sipp(run, Duration::from_secs(240));
    eprintln!(
        "lossy run: relay forwarded {} and dropped {} datagrams\n{}",
        relay.forwarded.load(std::sync::atomic::Ordering::Relaxed),
        relay.dropped.load(std::sync::atomic::Ordering::Relaxed),
        sipp.summary()
    );
    assert_eq!(
        sipp.successful_calls(),
        1000,
        "{}\n{}",
        sipp.summary(),
        sipp.errors
    );
    sipp.assert_ok("1000 calls through loss");
    // Transactions linger up to 64·T1 (timer J) to absorb retransmissions; then nothing is left.
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        let s = server.get("/api/v1/status");
        if (s["transactions"] == 0 && s["dialogs"] == 0) || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(status["dialogs"], 0, "{status}");
    assert_eq!(status["transactions"], 0, "{status}");
}
