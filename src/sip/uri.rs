//! SIP URIs (RFC 3261 §19.1), including IPv6 references and quoted-free parameters.

use super::text::{param, parse_params, write_uri_params};
use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
}

/// A parsed `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name or address; IPv6 is kept with brackets, as written in the URI.
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
    pub headers: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("unsupported URI scheme")]
    Scheme,
    #[error("URI has no host")]
    NoHost,
    #[error("URI port is not a number in 1..=65535")]
    Port,
    #[error("unterminated IPv6 reference in URI")]
    Ipv6,
    #[error("URI contains a character not allowed in it")]
    BadChar,
}

impl SipUri {
    pub fn new(user: Option<&str>, host: &str, port: Option<u16>) -> Self {
        Self {
            scheme: Scheme::Sip,
            user: user.map(str::to_string),
            password: None,
            host: host.to_string(),
            port,
            params: Vec::new(),
            headers: None,
        }
    }

    pub fn parse(input: &str) -> Result<Self, UriError> {
        let input = input.trim();
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(input, "sip:") {
            (Scheme::Sip, r)
        } else if let Some(r) = strip_prefix_ci(input, "sips:") {
            (Scheme::Sips, r)
        } else {
            return Err(UriError::Scheme);
        };
        if rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(UriError::BadChar);
        }
        // userinfo ends at the first '@': neither user nor password may hold one unescaped,
        // while they may hold ';', '?', ',' and '/' (RFC 3261 §25.1 user-unreserved), so those
        // only start parameters and headers after it.
        let (userinfo, rest) = match rest.split_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (hostpart, headers) = match rest.split_once('?') {
            Some((a, h)) => (a, Some(h.to_string())),
            None => (rest, None),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((h, p)) => (h, parse_params(p)),
            None => (hostpart, Vec::new()),
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(Self {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param(&self.params, name)
    }

    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        super::text::set_param(&mut self.params, name, value);
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }

    /// The `transport` parameter, lower-cased, if present.
    pub fn transport(&self) -> Option<String> {
        self.param("transport")
            .flatten()
            .map(|t| t.to_ascii_lowercase())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(48);
        s.push_str(match self.scheme {
            Scheme::Sip => "sip:",
            Scheme::Sips => "sips:",
        });
        if let Some(u) = &self.user {
            s.push_str(u);
            if let Some(p) = &self.password {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        write_uri_params(&mut s, &self.params);
        if let Some(h) = &self.headers {
            s.push('?');
            s.push_str(h);
        }
        f.write_str(&s)
    }
}

/// Splits `host[:port]`, where host may be an IPv6 reference `[..]`.
pub fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), UriError> {
    let hostport = hostport.trim();
    if hostport.is_empty() {
        return Err(UriError::NoHost);
    }
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport.find(']').ok_or(UriError::Ipv6)?;
        let host = &hostport[..=end];
        let rest = &hostport[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err(UriError::Ipv6),
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(UriError::NoHost);
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return Err(UriError::BadChar);
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(UriError::Port),
        },
        None => None,
    };
    Ok((host.to_string(), port))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri() {
        let u = SipUri::parse("sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x"
        );
    }

    /// A GRUU (RFC 5627) names the instance in a URI parameter: written as it came, never as a
    /// quoted string (which JsSIP, rightly, cannot parse in a Request-URI).
    #[test]
    fn gruu_parameter_is_not_quoted() {
        let gruu = "sip:alice@127.0.0.1:5070;gr=urn:uuid:0767df9a-71b7-48eb-b15d-cce1c06bae26";
        assert_eq!(SipUri::parse(gruu).unwrap().to_string(), gruu);
    }

    #[test]
    fn ipv6_host() {
        let u = SipUri::parse("sip:bob@[2001:db8::1]:5060").unwrap();
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5060));
        assert!(u.ip().is_some());
        let u = SipUri::parse("sips:[::1]").unwrap();
        assert_eq!(u.port, None);
        assert_eq!(u.scheme, Scheme::Sips);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(SipUri::parse("http://x"), Err(UriError::Scheme));
        assert_eq!(SipUri::parse("sip:a@"), Err(UriError::NoHost));
        assert_eq!(SipUri::parse("sip:a@h:99999"), Err(UriError::Port));
        assert_eq!(SipUri::parse("sip:a@[::1"), Err(UriError::Ipv6));
    }

    #[test]
    fn unusual_but_legal_user_parts() {
        // RFC 4475 §3.1.1.2 and §3.1.1.9: ';', '?', ',', '/' and ':' in the userinfo.
        let u = SipUri::parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(u.host, "example.com");
        assert!(u.params.is_empty() && u.headers.is_none());
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        let u = SipUri::parse("sip:user@example.com?Route=%3Csip:example.com%3E").unwrap();
        assert_eq!(u.headers.as_deref(), Some("Route=%3Csip:example.com%3E"));
    }

    #[test]
    fn pin_parameter() {
        let u = SipUri::parse("sip:k3x9a2@127.0.0.1;pin=1234").unwrap();
        assert_eq!(u.param("pin"), Some(Some("1234")));
    }
}
