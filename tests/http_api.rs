//! The HTTP API: open, read, dial-out invitations; authentication required.

mod common;

use common::{finish_sipp, password, sipp_invitee, Server};
use std::time::Duration;

#[test]
fn open_and_read_need_credentials() {
    let server = Server::start();
    let http = server.http();
    let r = http
        .post(server.url("/api/v1/conferences"))
        .json(&serde_json::json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some("wrong"))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some(password("alice")))
        .json(&serde_json::json!({"name": "Planning", "pin": "4321"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().unwrap();
    let id = v["id"].as_str().unwrap();
    assert_eq!(id.len(), 10);
    assert_eq!(v["name"], "Planning");
    assert_eq!(v["pin"], "4321");
    assert_eq!(v["uri"], format!("sip:{id}@{}", server.sip));
    let got = server.get(&format!("/api/v1/conferences/{id}"));
    assert_eq!(got["owner"], "alice");
    assert_eq!(got["participants"].as_array().unwrap().len(), 0);
    let r = http
        .get(server.url("/api/v1/conferences/nosuchconf"))
        .basic_auth("alice", Some(password("alice")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let bad = http
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some(password("alice")))
        .json(&serde_json::json!({"pin": "12ab"}))
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

#[test]
fn invitations_dial_out() {
    let server = Server::start();
    let (conf, _) = server.open_conference("API invite");
    let bob = sipp_invitee(&server, "bob");
    let r: serde_json::Value = server
        .http()
        .post(server.url(&format!("/api/v1/conferences/{conf}/invitations")))
        .basic_auth("alice", Some(password("alice")))
        .json(&serde_json::json!({"users": ["bob", "carol", "nobody"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let status_of = |u: &str| {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["user"] == u)
            .unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(status_of("bob"), 200, "{r}");
    assert_eq!(
        status_of("carol"),
        480,
        "carol exists but is not registered"
    );
    assert_eq!(
        status_of("nobody"),
        480,
        "no account and not registered get one answer: the outcome tells nobody who has an account"
    );
    let roster = server.get(&format!("/api/v1/conferences/{conf}"));
    assert_eq!(roster["participants"][0]["user"], "bob");
    finish_sipp(bob, Duration::from_secs(30)).assert_ok("bob answers and hangs up");
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
}
