//! SIP requests and responses: typed access to the headers every layer needs, and serialization.

use super::header::{HeaderName, Headers};
use super::method::Method;
use super::name_addr::NameAddr;
use super::text::{split_comma_list, BytesStr};
use super::uri::SipUri;
use super::via::Via;
use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: SipUri,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: BytesStr,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// `CSeq: <number> <method>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(v: &str) -> Option<Self> {
        let mut it = v.split_ascii_whitespace();
        let seq = it.next()?.parse().ok()?;
        let method = Method::parse(it.next()?);
        it.next().is_none().then_some(Self { seq, method })
    }
}

/// Accessors shared by requests and responses.
pub trait SipHeaders {
    fn headers(&self) -> &Headers;
    fn headers_mut(&mut self) -> &mut Headers;
    fn body(&self) -> &Bytes;

    fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers().get(name).map(|v| v.as_str())
    }

    fn call_id(&self) -> Option<&str> {
        self.header(&HeaderName::CallId).map(str::trim)
    }

    fn cseq(&self) -> Option<CSeq> {
        self.header(&HeaderName::CSeq).and_then(CSeq::parse)
    }

    fn header_from(&self) -> Option<NameAddr> {
        self.header(&HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    fn header_to(&self) -> Option<NameAddr> {
        self.header(&HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// Every Via value, top first (values that share a line are split).
    fn vias(&self) -> Vec<Via> {
        self.headers()
            .get_all(&HeaderName::Via)
            .flat_map(|v| {
                split_comma_list(v.as_str())
                    .into_iter()
                    .map(Via::parse)
                    .collect::<Vec<_>>()
            })
            .filter_map(Result::ok)
            .collect()
    }

    fn top_via(&self) -> Option<Via> {
        let first = self.headers().get(&HeaderName::Via)?;
        let first = split_comma_list(first.as_str()).into_iter().next()?;
        Via::parse(first).ok()
    }

    /// Whether the message lists option tag `tag` in Supported or Require.
    fn supports(&self, tag: &str) -> bool {
        self.headers()
            .get_all(&HeaderName::Supported)
            .chain(self.headers().get_all(&HeaderName::Require))
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(tag)))
    }

    /// Every Contact value (a REGISTER may carry several, or `*`).
    fn contacts(&self) -> Vec<NameAddr> {
        self.name_addr_list(&HeaderName::Contact)
    }

    fn name_addr_list(&self, name: &HeaderName) -> Vec<NameAddr> {
        self.headers()
            .get_all(name)
            .flat_map(|v| {
                split_comma_list(v.as_str())
                    .into_iter()
                    .filter_map(|p| NameAddr::parse(p).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn content_type(&self) -> Option<&str> {
        self.header(&HeaderName::ContentType)
            .map(|v| v.split(';').next().unwrap_or(v).trim())
    }

    fn expires(&self) -> Option<u32> {
        self.header(&HeaderName::Expires)
            .and_then(|v| v.trim().parse().ok())
    }
}

macro_rules! impl_sip_headers {
    ($t:ty) => {
        impl SipHeaders for $t {
            fn headers(&self) -> &Headers {
                &self.headers
            }
            fn headers_mut(&mut self) -> &mut Headers {
                &mut self.headers
            }
            fn body(&self) -> &Bytes {
                &self.body
            }
        }
    };
}
impl_sip_headers!(Request);
impl_sip_headers!(Response);

impl Request {
    pub fn new(method: Method, uri: SipUri) -> Self {
        Self {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.header(&HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse().ok())
    }

    /// Serializes with a freshly computed Content-Length.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(512 + self.body.len());
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.to_string().as_bytes());
        out.put_slice(b" SIP/2.0\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

impl Response {
    pub fn new(status: u16, reason: &str) -> Self {
        Self {
            status,
            reason: BytesStr::from(reason),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `req` that copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
    pub fn for_request(req: &Request, status: u16, reason: &str) -> Self {
        let mut r = Self::new(status, reason);
        for h in req.headers.iter() {
            match h.name {
                HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq => r.headers.push(h.name.clone(), h.value.clone()),
                // Record-Route is copied into 2xx/1xx of dialog-creating requests (§12.1.1).
                HeaderName::RecordRoute if (100..300).contains(&status) => {
                    r.headers.push(h.name.clone(), h.value.clone())
                }
                _ => {}
            }
        }
        r
    }

    /// Adds a To tag unless one is present (§8.2.6.2: a UAS adds one to every non-100 response).
    pub fn with_to_tag(mut self, tag: &str) -> Self {
        if let Some(mut to) = self.header_to() {
            if to.tag().is_none() {
                to.set_param("tag", Some(tag));
                self.headers.set(HeaderName::To, to.to_string());
            }
        }
        self
    }

    pub fn is_final(&self) -> bool {
        self.status >= 200
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(512 + self.body.len());
        out.put_slice(b"SIP/2.0 ");
        out.put_slice(self.status.to_string().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.reason.as_bytes());
        out.put_slice(b"\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

impl Message {
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        match self {
            Message::Request(r) => r.call_id(),
            Message::Response(r) => r.call_id(),
        }
    }
}

fn write_headers_and_body(out: &mut BytesMut, headers: &Headers, body: &Bytes) {
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        // Last line of defence against header injection: a value with CR or LF would end the
        // header and start another. Values are checked where they enter; this refuses the rest.
        if h.value
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b'\r' | b'\n'))
        {
            tracing::error!(header = %h.name, "header value with CR/LF refused");
            continue;
        }
        out.put_slice(h.name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(h.value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Length: ");
    out.put_slice(body.len().to_string().as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body);
}

/// The standard reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        513 => "Message Too Large",
        603 => "Decline",
        _ => "Unknown",
    }
}
