//! The wire parser: bytes in, `Message` out, never a panic.
//!
//! Header values stay slices of the input buffer; only folded headers (RFC 3261 §7.3.1) are copied,
//! to unfold them. Lines may end in CRLF or a bare LF (lenient on input, strict on output).

use super::header::{HeaderName, Headers};
use super::message::{CSeq, Message, Request, Response, SipHeaders};
use super::method::Method;
use super::name_addr::NameAddr;
use super::text::BytesStr;
use super::uri::{SipUri, UriError};
use super::via::Via;
use bytes::{Bytes, BytesMut};

/// Largest message accepted on any transport (a real INVITE with SDP is a few KiB). Larger
/// requests are answered 513 when their header block can be read.
pub const MAX_MESSAGE_SIZE: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("Empty Message")]
    Empty,
    #[error("Missing Empty Line After Headers")]
    NoHeaderEnd,
    #[error("Malformed Start Line")]
    StartLine,
    #[error("Unsupported SIP Version")]
    Version,
    #[error("Malformed Request-URI")]
    RequestUri,
    /// A well-formed URI of a scheme other than sip/sips: answered 416.
    #[error("Unsupported URI Scheme")]
    UriScheme,
    #[error("Malformed Status Code")]
    Status,
    #[error("Malformed Header Line")]
    HeaderLine,
    #[error("Header Is Not UTF-8")]
    NotUtf8,
    #[error("Malformed Content-Length")]
    ContentLength,
    #[error("Conflicting Content-Length")]
    ConflictingLength,
    #[error("Content-Length Larger Than Message")]
    Truncated,
    #[error("Message Too Large")]
    TooLarge,
}

/// A parse failure. When the header block could be read, `headers` holds it so the caller can
/// still answer a broken request with 400 (that needs Via, From, To, Call-ID and CSeq).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub headers: Option<Headers>,
    pub is_request: bool,
}

impl ParseError {
    fn new(kind: ParseErrorKind) -> Self {
        Self {
            kind,
            headers: None,
            is_request: false,
        }
    }
}

/// Parses one complete message (a UDP datagram or a frame cut by [`super::framing::Framer`]).
pub fn parse_message(buf: Bytes) -> Result<Message, ParseError> {
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let lead = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let buf = buf.slice(lead..);
    if buf.is_empty() {
        return Err(ParseError::new(ParseErrorKind::Empty));
    }
    let (head_end, body_start) =
        find_header_end(&buf).ok_or(ParseError::new(ParseErrorKind::NoHeaderEnd))?;
    let head = buf.slice(..head_end);
    let mut lines = split_lines(&head);
    let start = lines
        .next()
        .ok_or(ParseError::new(ParseErrorKind::StartLine))?;
    let start =
        std::str::from_utf8(&start).map_err(|_| ParseError::new(ParseErrorKind::NotUtf8))?;
    let is_request = !start.starts_with("SIP/");
    let headers = parse_headers(&head, lines).map_err(|kind| ParseError {
        kind,
        headers: None,
        is_request,
    })?;
    let fail = |kind| ParseError {
        kind,
        headers: Some(headers.clone()),
        is_request,
    };

    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(fail(ParseErrorKind::TooLarge));
    }
    let rest = buf.slice(body_start..);
    // Two Content-Lengths leave the body's end unknown (RFC 4475 §3.3.9).
    if headers.get_all(&HeaderName::ContentLength).nth(1).is_some() {
        return Err(fail(ParseErrorKind::ConflictingLength));
    }
    let body = match headers.get(&HeaderName::ContentLength) {
        Some(v) => {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| fail(ParseErrorKind::ContentLength))?;
            if n > rest.len() {
                return Err(fail(ParseErrorKind::Truncated));
            }
            rest.slice(..n)
        }
        // Datagrams may omit Content-Length: the body is the rest (RFC 3261 §18.3).
        None => rest,
    };

    if is_request {
        let mut parts = start.splitn(3, ' ');
        let (m, u, v) = (parts.next(), parts.next(), parts.next());
        let (Some(m), Some(u), Some(v)) = (m, u, v) else {
            return Err(fail(ParseErrorKind::StartLine));
        };
        if m.is_empty() || !m.chars().all(super::text::is_token_char) {
            return Err(fail(ParseErrorKind::StartLine));
        }
        // Exactly `SIP/2.0`: another version is 505, anything else (a trailing space
        // included, RFC 4475 §3.1.2.10) a malformed line.
        if v != "SIP/2.0" {
            return Err(fail(if is_sip_version(v) {
                ParseErrorKind::Version
            } else {
                ParseErrorKind::StartLine
            }));
        }
        let uri = SipUri::parse(u).map_err(|e| {
            fail(if e == UriError::Scheme && is_absolute_uri(u) {
                ParseErrorKind::UriScheme
            } else {
                ParseErrorKind::RequestUri
            })
        })?;
        // Headers (`?`) are not allowed in a Request-URI (RFC 3261 §19.1.5).
        if uri.headers.is_some() {
            return Err(fail(ParseErrorKind::RequestUri));
        }
        Ok(Message::Request(Request {
            method: Method::parse(m),
            uri,
            headers,
            body,
        }))
    } else {
        let mut parts = start.splitn(3, ' ');
        let (v, code, reason) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        if v != Some("SIP/2.0") {
            return Err(fail(ParseErrorKind::Version));
        }
        let status: u16 = code
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| fail(ParseErrorKind::Status))?;
        if !(100..=699).contains(&status) {
            return Err(fail(ParseErrorKind::Status));
        }
        let reason = BytesStr::from(reason.trim_end());
        Ok(Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }))
    }
}

/// `SIP/` then digits, `.`, digits: a version, if not ours.
fn is_sip_version(v: &str) -> bool {
    v.strip_prefix("SIP/")
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

/// `scheme ":" rest` of RFC 3986: a URI we may not serve, but not a malformed one.
fn is_absolute_uri(u: &str) -> bool {
    u.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && rest.chars().all(|c| c.is_ascii_graphic())
    })
}

/// Headers of which a request carries one at most (RFC 3261 §7.3.1, §20; RFC 4475 §3.3.8).
const SINGLE: [HeaderName; 5] = [
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
];

/// Checks the headers every request must carry (RFC 3261 §8.1.1) and returns the reason phrase
/// for a 400 when one is missing or malformed.
pub fn check_request(req: &Request) -> Result<(), &'static str> {
    let via = req.headers.get(&HeaderName::Via).ok_or("Missing Via")?;
    let top = super::text::split_comma_list(via)
        .into_iter()
        .next()
        .ok_or("Malformed Via")?;
    Via::parse(top).map_err(|_| "Malformed Via")?;
    NameAddr::parse(req.header(&HeaderName::From).ok_or("Missing From")?)
        .map_err(|_| "Malformed From")?;
    NameAddr::parse(req.header(&HeaderName::To).ok_or("Missing To")?)
        .map_err(|_| "Malformed To")?;
    if req.call_id().is_none_or(str::is_empty) {
        return Err("Missing Call-ID");
    }
    let cseq = req.header(&HeaderName::CSeq).ok_or("Missing CSeq")?;
    let cseq = CSeq::parse(cseq).ok_or("Malformed CSeq")?;
    if cseq.method != req.method {
        return Err("CSeq Method Does Not Match Request");
    }
    if let Some(mf) = req.header(&HeaderName::MaxForwards) {
        mf.trim()
            .parse::<u8>()
            .map_err(|_| "Malformed Max-Forwards")?;
    }
    if SINGLE
        .iter()
        .any(|h| req.headers.get_all(h).nth(1).is_some())
    {
        return Err("Header Field Repeated That Takes One Value");
    }
    // SIP dates are always GMT (RFC 3261 §20.17; RFC 4475 §3.1.2.12).
    if req
        .headers
        .get_other("Date")
        .is_some_and(|d| !d.trim_end().ends_with(" GMT"))
    {
        return Err("Malformed Date");
    }
    for contact in req.headers.get_all(&HeaderName::Contact) {
        for c in super::text::split_comma_list(contact) {
            if c.trim() != "*" && NameAddr::parse(c).is_err() {
                return Err("Malformed Contact");
            }
        }
    }
    Ok(())
}

/// Checks a response has what transaction matching needs.
pub fn check_response(resp: &Response) -> bool {
    resp.top_via().is_some() && resp.cseq().is_some() && resp.call_id().is_some()
}

/// Returns (end of header block, start of body).
pub fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn split_lines(head: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= head.len() {
            return None;
        }
        let end = head[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(head.len(), |i| pos + i);
        let mut line_end = end;
        if line_end > pos && head[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        let line = head.slice(pos..line_end);
        pos = end + 1;
        Some(line)
    })
}

fn parse_headers(
    head: &Bytes,
    lines: impl Iterator<Item = Bytes>,
) -> Result<Headers, ParseErrorKind> {
    let _ = head;
    let mut headers = Headers::new();
    let mut pending: Option<(HeaderName, Bytes, Option<BytesMut>)> = None;
    let flush = |headers: &mut Headers,
                 p: Option<(HeaderName, Bytes, Option<BytesMut>)>|
     -> Result<(), ParseErrorKind> {
        if let Some((name, value, folded)) = p {
            let bytes = match folded {
                Some(f) => f.freeze(),
                None => value,
            };
            let text = BytesStr::from_utf8(bytes).map_err(|_| ParseErrorKind::NotUtf8)?;
            let trimmed = text.trim();
            headers.push(name, text.slice_ref(trimmed));
        }
        Ok(())
    };
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            // Folded continuation: join with one space.
            let Some((_, value, folded)) = pending.as_mut() else {
                return Err(ParseErrorKind::HeaderLine);
            };
            let buf = folded.get_or_insert_with(|| BytesMut::from(&value[..]));
            buf.extend_from_slice(b" ");
            let cont = &line[line
                .iter()
                .position(|b| *b != b' ' && *b != b'\t')
                .unwrap_or(line.len())..];
            buf.extend_from_slice(cont);
            continue;
        }
        flush(&mut headers, pending.take())?;
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or(ParseErrorKind::HeaderLine)?;
        let name = std::str::from_utf8(&line[..colon])
            .map_err(|_| ParseErrorKind::NotUtf8)?
            .trim_end();
        if name.is_empty() || !name.chars().all(super::text::is_token_char) {
            return Err(ParseErrorKind::HeaderLine);
        }
        pending = Some((HeaderName::parse(name), line.slice(colon + 1..), None));
    }
    flush(&mut headers, pending.take())?;
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Request {
        match parse_message(Bytes::copy_from_slice(s.as_bytes())).unwrap() {
            Message::Request(r) => r,
            _ => panic!("not a request"),
        }
    }

    const INVITE: &str = "INVITE sip:conference@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
f: <sip:alice@127.0.0.1>;tag=1\r\n\
t: <sip:conference@127.0.0.1>\r\n\
i: abc@host\r\n\
CSeq: 1 INVITE\r\n\
Subject: Weekly\r\n  sync\r\n\
m: <sip:alice@127.0.0.1:5070>\r\n\
l: 4\r\n\r\nbodyEXTRA";

    #[test]
    fn compact_folded_and_body() {
        let r = req(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.call_id(), Some("abc@host"));
        assert_eq!(r.header(&HeaderName::Subject), Some("Weekly sync"));
        assert_eq!(&r.body[..], b"body");
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK1"));
        assert_eq!(r.contacts()[0].uri.port, Some(5070));
        assert!(check_request(&r).is_ok());
    }

    #[test]
    fn round_trip() {
        let r = req(INVITE);
        let again = req(std::str::from_utf8(&r.to_bytes()).unwrap());
        assert_eq!(r, again);
    }

    #[test]
    fn bare_lf_and_response() {
        let m = parse_message(Bytes::from_static(
            b"SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\nCall-ID: x\nCSeq: 2 INVITE\n\n",
        ))
        .unwrap();
        let Message::Response(r) = m else { panic!() };
        assert_eq!(r.status, 180);
        assert_eq!(r.reason.as_str(), "Ringing");
        assert!(check_response(&r));
    }

    #[test]
    fn errors_keep_headers_for_a_400() {
        let e = parse_message(Bytes::from_static(
            b"INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nContent-Length: 99\r\n\r\nabc",
        ))
        .unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Truncated);
        assert!(e.is_request);
        assert!(e.headers.is_some());
        let e = parse_message(Bytes::from_static(b"INVITE http://x SIP/2.0\r\n\r\n")).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::UriScheme);
        let e = parse_message(Bytes::from_static(b"INVITE <sip:x@h> SIP/2.0\r\n\r\n")).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::RequestUri);
        let e = parse_message(Bytes::from_static(b"OPTIONS sip:x@h SIP/2.0 \r\n\r\n")).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::StartLine);
        let e = parse_message(Bytes::from_static(
            b"OPTIONS sip:x@h SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab",
        ))
        .unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::ConflictingLength);
        assert!(parse_message(Bytes::from_static(b"\r\n\r\n")).is_err());
        assert!(parse_message(Bytes::from_static(b"GARBAGE")).is_err());
        assert_eq!(
            parse_message(Bytes::from_static(b"INVITE sip:x@h SIP/3.0\r\n\r\n"))
                .unwrap_err()
                .kind,
            ParseErrorKind::Version
        );
    }

    #[test]
    fn too_large_keeps_headers_for_a_513() {
        let mut m = b"MESSAGE sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\r\n".to_vec();
        m.extend(std::iter::repeat_n(b'x', MAX_MESSAGE_SIZE));
        let e = parse_message(Bytes::from(m)).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::TooLarge);
        assert!(e.headers.is_some());
    }

    #[test]
    fn missing_headers_are_named() {
        let r = req("OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nTo: <sip:h>\r\n\r\n");
        assert_eq!(check_request(&r), Err("Missing From"));
        let r = req("OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nTo: <sip:h>\r\n\r\n");
        assert_eq!(check_request(&r), Err("CSeq Method Does Not Match Request"));
    }

    #[test]
    fn unknown_method_parses() {
        let r = req("FOO sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: x\r\nCSeq: 1 FOO\r\n\r\n");
        assert_eq!(r.method, Method::Other("FOO".into()));
        assert!(check_request(&r).is_ok());
    }
}
