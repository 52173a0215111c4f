//! The Via header (RFC 3261 §20.42, §18.2.1 `received`, RFC 3581 `rport`).

use super::text::{param, parse_header_params, write_params};
use super::uri::{split_host_port, UriError};
use std::fmt;

/// The magic cookie that marks an RFC 3261 branch.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, upper-case (`UDP`, `TCP`, `TLS`, `WS`, `WSS`).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViaError {
    #[error("Via does not start with SIP/2.0/<transport>")]
    Protocol,
    #[error("Via parameters are malformed")]
    Params,
    #[error("Via sent-by: {0}")]
    SentBy(#[from] UriError),
}

impl Via {
    /// One via-parm. LWS may surround the `/` of the protocol and the `;` and `=` of the
    /// parameters (RFC 3261 §25.1, as RFC 4475 §3.1.1.1 sends it); empty parameters are an
    /// error.
    pub fn parse(input: &str) -> Result<Self, ViaError> {
        let (name, rest) = take_token(input.trim_start());
        let rest = slash(rest).ok_or(ViaError::Protocol)?;
        let (version, rest) = take_token(rest);
        let rest = slash(rest).ok_or(ViaError::Protocol)?;
        let (transport, rest) = take_token(rest);
        if !name.eq_ignore_ascii_case("SIP")
            || version != "2.0"
            || transport.is_empty()
            || !rest.starts_with(|c: char| c.is_ascii_whitespace())
        {
            return Err(ViaError::Protocol);
        }
        let rest = rest.trim();
        let (sent_by, params) = match rest.split_once(';') {
            Some((s, p)) => (s, parse_header_params(p).ok_or(ViaError::Params)?),
            None => (rest, Vec::new()),
        };
        let (host, port) = split_host_port(sent_by.trim())?;
        Ok(Self {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch").flatten()
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param(&self.params, name)
    }

    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        super::text::set_param(&mut self.params, name, value);
    }
}

/// The leading token of `s` and what follows it.
fn take_token(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !super::text::is_token_char(c))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// `LWS "/" LWS`: what follows it, if `s` starts with it.
fn slash(s: &str) -> Option<&str> {
    Some(s.trim_start().strip_prefix('/')?.trim_start())
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = format!("SIP/2.0/{} {}", self.transport, self.host);
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        write_params(&mut s, &self.params);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_rport_and_ipv6() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "[2001:db8::9]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert_eq!(v.param("rport"), Some(None));
    }

    #[test]
    fn via_with_spaces() {
        let v = Via::parse("SIP / 2.0 / TCP host.example ;branch=z9hG4bKx").unwrap();
        assert_eq!(
            (v.transport.as_str(), v.host.as_str()),
            ("TCP", "host.example")
        );
        // RFC 4475 §3.1.1.1, unfolded.
        let v = Via::parse("SIP  /   2.0  /UDP    192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert!(Via::parse("HTTP/1.1/TCP h").is_err());
        assert!(Via::parse("SIP/7.0/UDP h").is_err());
        assert!(Via::parse("SIP/2.0/UDPh").is_err());
        // RFC 4475 §3.1.2.1: empty parameters.
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;branch=").is_err());
    }
}
