//! `name-addr` / `addr-spec` header values: From, To, Contact, Refer-To, Route, Record-Route.

use super::text::{param, parse_params, split_outside_quotes, write_params};
use super::uri::{SipUri, UriError};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: SipUri,
    /// Header parameters (after `>`, or after the URI when there are no angle brackets).
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn new(uri: SipUri) -> Self {
        Self {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    pub fn parse(input: &str) -> Result<Self, UriError> {
        let input = input.trim();
        if let Some(lt) = find_unquoted(input, '<') {
            let display = input[..lt].trim();
            let display = display.trim_matches('"').trim();
            let rest = &input[lt + 1..];
            let gt = rest.find('>').ok_or(UriError::BadChar)?;
            let uri = SipUri::parse(&rest[..gt])?;
            let after = rest[gt + 1..].trim();
            let params = match after.strip_prefix(';') {
                Some(p) => parse_params(p),
                None if after.is_empty() => Vec::new(),
                None => return Err(UriError::BadChar),
            };
            Ok(Self {
                display: (!display.is_empty()).then(|| display.to_string()),
                uri,
                params,
            })
        } else {
            // addr-spec: parameters after the URI are header parameters (RFC 3261 §20.10).
            let mut parts = split_outside_quotes(input, ';').into_iter();
            let uri = SipUri::parse(parts.next().unwrap_or_default())?;
            let rest: Vec<&str> = parts.collect();
            let params = parse_params(&rest.join(";"));
            Ok(Self {
                display: None,
                uri,
                params,
            })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param(&self.params, name)
    }

    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        super::text::set_param(&mut self.params, name, value);
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        if let Some(d) = &self.display {
            // RFC 3261 §25.1 quoted-string: `"` and `\` as quoted-pairs; control characters
            // (CR and LF above all) cannot appear in it at all and are dropped.
            s.push('"');
            for c in d.chars().filter(|c| !c.is_control()) {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push_str("\" ");
        }
        s.push('<');
        s.push_str(&self.uri.to_string());
        s.push('>');
        write_params(&mut s, &self.params);
        f.write_str(&s)
    }
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && in_quotes {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == needle && !in_quotes {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jssip_contact_with_instance() {
        let v = r#"<sip:abc@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:6c1a7d39-7a3d-4e3c-8a2e-3c1f0c4d5e6f>";expires=600"#;
        let na = NameAddr::parse(v).unwrap();
        assert_eq!(na.uri.transport().as_deref(), Some("ws"));
        assert_eq!(
            na.param("+sip.instance"),
            Some(Some("<urn:uuid:6c1a7d39-7a3d-4e3c-8a2e-3c1f0c4d5e6f>"))
        );
        assert_eq!(na.param("expires"), Some(Some("600")));
    }

    #[test]
    fn display_name_and_tag() {
        let na = NameAddr::parse(r#""Alice <A>" <sip:alice@h>;tag=abc"#).unwrap();
        assert_eq!(na.display.as_deref(), Some("Alice <A>"));
        assert_eq!(na.tag(), Some("abc"));
        let na = NameAddr::parse("sip:bob@h;tag=9").unwrap();
        assert_eq!(na.tag(), Some("9"));
        assert!(na.uri.params.is_empty());
    }
}
