//! SIP over TLS (rustls) with a self-signed certificate made for the test: OPTIONS, REGISTER
//! with digest and a join with BYE, all over one TLS connection; responses come back on it.

mod common;

use common::rtp::RtpPeer;
use common::{password, Server};
use convoke::sip::digest::{authorize, parse_challenge};
use convoke::sip::framing::{Frame, Framer};
use convoke::sip::{parse_message, HeaderName, Message, Response, SipHeaders};
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

struct TlsUa {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    framer: Framer,
    local: String,
}

impl TlsUa {
    fn connect(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> Self {
        let conn =
            rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
                .unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = tcp.local_addr().unwrap().to_string();
        Self {
            stream: rustls::StreamOwned::new(conn, tcp),
            framer: Framer::new(),
            local,
        }
    }

    /// Sends a request and reads messages until its final response.
    fn request(&mut self, text: &str) -> Response {
        self.stream
            .write_all(text.replace("{L}", &self.local).as_bytes())
            .unwrap();
        loop {
            if let Some(Frame::Message(m)) = self.framer.next_frame().unwrap() {
                if let Ok(Message::Response(r)) = parse_message(m) {
                    if r.status >= 200 {
                        return r;
                    }
                }
                continue;
            }
            let mut buf = [0u8; 8192];
            let n = self.stream.read(&mut buf).expect("response over TLS");
            assert!(n > 0, "server closed the TLS connection");
            self.framer.push(&buf[..n]);
        }
    }
}

#[test]
fn register_and_join_over_tls() {
    let cert = common::certs::SelfSigned::new();
    let tls_addr = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_tcp_port()));
    let [c1, c2, c3, c4] = cert.flags();
    let server = Server::start_with(&["--tls", &tls_addr.to_string(), &c1, &c2, &c3, &c4]);
    let mut ua = TlsUa::connect(tls_addr, cert.client_config());

    let options = ua.request(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS {L};branch=z9hG4bKt1\r\nFrom: <sip:alice@127.0.0.1>;tag=1\r\n\
To: <sip:127.0.0.1>\r\nCall-ID: tls1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(options.status, 200);

    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS {{L}};branch=z9hG4bKr{cseq}\r\nFrom: <sip:alice@127.0.0.1>;tag=2\r\n\
To: <sip:alice@127.0.0.1>\r\nCall-ID: tls2\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:alice@{{L}};transport=tls>\r\n{auth}Expires: 60\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let challenge = ua.request(&register(1, ""));
    assert_eq!(challenge.status, 401);
    let ch = parse_challenge(challenge.header(&HeaderName::WwwAuthenticate).unwrap()).unwrap();
    let auth = authorize(
        &ch,
        "alice",
        password("alice"),
        "REGISTER",
        "sip:127.0.0.1",
        1,
        "c",
    );
    assert_eq!(
        ua.request(&register(2, &format!("Authorization: {auth}\r\n")))
            .status,
        200
    );
    assert_eq!(server.get("/api/v1/status")["registrations"], 1);

    let (conf, pin) = server.open_conference("over TLS");
    let rtp = RtpPeer::bind("127.0.0.1", 3);
    let sdp = rtp.offer();
    let join = ua.request(&format!(
        "INVITE sip:{conf}@127.0.0.1;pin={pin} SIP/2.0\r\nVia: SIP/2.0/TLS {{L}};branch=z9hG4bKi1\r\nFrom: <sip:alice@127.0.0.1>;tag=3\r\n\
To: <sip:{conf}@127.0.0.1>\r\nCall-ID: tls3\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{{L}};transport=tls>\r\nMax-Forwards: 70\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ));
    assert_eq!(join.status, 200);
    let contact = join.header(&HeaderName::Contact).unwrap();
    assert!(
        contact.contains("transport=tls") && contact.ends_with(";isfocus"),
        "{contact}"
    );
    let to = join.header(&HeaderName::To).unwrap().to_string();
    let ack = format!(
        "ACK sip:{conf}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS {{L}};branch=z9hG4bKa1\r\nFrom: <sip:alice@127.0.0.1>;tag=3\r\nTo: {to}\r\n\
Call-ID: tls3\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    ua.stream
        .write_all(ack.replace("{L}", &ua.local).as_bytes())
        .unwrap();
    let bye = ua.request(&format!(
        "BYE sip:{conf}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS {{L}};branch=z9hG4bKb1\r\nFrom: <sip:alice@127.0.0.1>;tag=3\r\nTo: {to}\r\n\
Call-ID: tls3\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    assert_eq!(bye.status, 200);
    assert_eq!(server.wait_no_dialogs()["dialogs"], 0);
}
