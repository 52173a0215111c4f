//! `name-addr` / `addr-spec` header values: From, To, Contact, Refer-To, Route, Record-Route.

use super::text::{is_token_char, param, parse_header_params, write_params};
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

    /// A name-addr (`"Display" <URI>;params`) or an addr-spec (`URI;params`). Strict where
    /// RFC 4475 asks for a 400: the display name is a quoted string or tokens (§3.1.2.15), no
    /// space inside `<>` (§3.1.2.14), no empty parameter (§3.1.2.1), and an addr-spec has no
    /// `?` headers, which only `<>` can carry (§3.1.2.13).
    pub fn parse(input: &str) -> Result<Self, UriError> {
        let input = input.trim();
        if let Some(lt) = find_unquoted(input, '<') {
            let display = display_name(input[..lt].trim()).ok_or(UriError::BadChar)?;
            let rest = &input[lt + 1..];
            let gt = rest.find('>').ok_or(UriError::BadChar)?;
            let inner = &rest[..gt];
            if inner.trim() != inner {
                return Err(UriError::BadChar);
            }
            let uri = SipUri::parse(inner)?;
            let after = rest[gt + 1..].trim();
            let params = match after.strip_prefix(';') {
                Some(p) => parse_header_params(p).ok_or(UriError::BadChar)?,
                None if after.is_empty() => Vec::new(),
                None => return Err(UriError::BadChar),
            };
            Ok(Self {
                display,
                uri,
                params,
            })
        } else {
            // addr-spec: parameters after the URI are header parameters (RFC 3261 §20.10).
            let (uri, params) = match input.split_once(';') {
                Some((u, p)) => (u, parse_header_params(p).ok_or(UriError::BadChar)?),
                None => (input, Vec::new()),
            };
            let uri = SipUri::parse(uri)?;
            if uri.headers.is_some() {
                return Err(UriError::BadChar);
            }
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

/// The display name before `<`: a quoted string (unquoted, escapes kept) or LWS-separated
/// tokens; None when it is neither.
fn display_name(raw: &str) -> Option<Option<String>> {
    if raw.is_empty() {
        return Some(None);
    }
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        // The closing quote must not be escaped.
        let trailing_backslashes = inner.chars().rev().take_while(|c| *c == '\\').count();
        if !trailing_backslashes.is_multiple_of(2) {
            return None;
        }
        return Some(Some(inner.trim().to_string()).filter(|d| !d.is_empty()));
    }
    raw.chars()
        .all(|c| is_token_char(c) || c == ' ' || c == '\t')
        .then(|| Some(raw.to_string()))
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    super::text::scan_outside_quotes(s, needle)
        .0
        .first()
        .copied()
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
