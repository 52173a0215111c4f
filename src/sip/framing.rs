//! Cuts a byte stream (TCP, TLS) into SIP messages by Content-Length (RFC 3261 §18.3), and
//! recognises RFC 5626 CRLF keep-alives.

use super::parse::{find_header_end, MAX_MESSAGE_SIZE};
use bytes::{Bytes, BytesMut};

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete message, ready for [`super::parse::parse_message`].
    Message(Bytes),
    /// A double-CRLF "ping": answer with a single CRLF "pong" (RFC 5626 §3.5.1).
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
    #[error("malformed Content-Length on a stream")]
    ContentLength,
}

/// Accumulates stream bytes and yields complete frames.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    /// A message whose length cannot be known was handed out: the stream is lost.
    failed: bool,
}

impl Framer {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(4096),
            failed: false,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. After an error the stream
    /// cannot be resynchronised and should be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.failed {
            return Err(FramingError::ContentLength);
        }
        if self.buf.starts_with(b"\r\n\r\n") {
            let _ = self.buf.split_to(4);
            return Ok(Some(Frame::Ping));
        }
        // A lone CRLF (a pong, or stray bytes) before a message is skipped; if nothing but
        // CR/LF has arrived yet it may be the start of a ping, so wait.
        let lead = self
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if lead == self.buf.len() {
            return Ok(None);
        }
        let _ = self.buf.split_to(lead);
        let Some((head_end, body_start)) = find_header_end(&self.buf) else {
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(FramingError::TooLarge);
            }
            return Ok(None);
        };
        let length = match content_length(&self.buf[..head_end]) {
            Ok(length) => length,
            Err(_) => {
                // The header block alone, once, so that the request can be answered 400
                // before the stream is closed.
                self.failed = true;
                return Ok(Some(Frame::Message(self.buf.split_to(body_start).freeze())));
            }
        };
        let total = body_start + length;
        if total > MAX_MESSAGE_SIZE {
            return Err(FramingError::TooLarge);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }
}

/// Reads Content-Length (or compact `l`) from a header block; absent means 0. A malformed
/// value or two of them (RFC 4475 §3.3.9) leave the message's end unknown.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found = None;
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]);
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            if found.is_some() {
                return Err(FramingError::ContentLength);
            }
            let v = String::from_utf8_lossy(&line[colon + 1..]);
            found = Some(v.trim().parse().map_err(|_| FramingError::ContentLength)?);
        }
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:h SIP/2.0\r\nl: 3\r\n\r\nabc";

    #[test]
    fn several_messages_in_one_segment() {
        let mut f = Framer::new();
        let mut data = MSG.to_vec();
        data.extend_from_slice(MSG);
        f.push(&data);
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn one_message_split_over_segments() {
        let mut f = Framer::new();
        for chunk in MSG.chunks(5) {
            assert_eq!(f.next_frame().unwrap(), None);
            f.push(chunk);
        }
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
    }

    #[test]
    fn keepalive_ping() {
        let mut f = Framer::new();
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        f.push(b"\r\n");
        f.push(MSG);
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
    }

    #[test]
    fn oversized_is_an_error() {
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:h SIP/2.0\r\nContent-Length: 999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge));
    }
}
