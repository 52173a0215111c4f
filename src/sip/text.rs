//! `BytesStr`: a UTF-8 string that shares the received datagram's buffer.
//!
//! Header values are slices of the message they came in; validating UTF-8 once at parse time lets
//! every later reader borrow a `&str` without copying.

use bytes::Bytes;
use std::fmt;

/// Immutable UTF-8 text backed by `Bytes` (cheap to clone, zero-copy slicing of a datagram).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BytesStr(Bytes);

impl BytesStr {
    /// Validates `bytes` as UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }

    pub fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or guarantees UTF-8, and `Bytes` is immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// A sub-slice of `self` that shares the buffer; `part` must point into `self.as_str()`.
    pub fn slice_ref(&self, part: &str) -> Self {
        Self(self.0.slice_ref(part.as_bytes()))
    }
}

impl From<String> for BytesStr {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&str> for BytesStr {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl std::ops::Deref for BytesStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for BytesStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for BytesStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Splits a header value on commas that are outside quotes and angle brackets
/// (RFC 3261 §7.3.1: several values of one header may share one line).
pub fn split_comma_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                let part = value[start..i].trim();
                if !part.is_empty() {
                    parts.push(part);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = value[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

/// Parses `;name=value;flag` parameters (values may be quoted); `input` starts after the first `;`.
pub fn parse_params(input: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for raw in split_outside_quotes(input, ';') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match raw.split_once('=') {
            Some((k, v)) => out.push((k.trim().to_string(), Some(unquote(v.trim()).to_string()))),
            None => out.push((raw.to_string(), None)),
        }
    }
    out
}

/// Header parameters as RFC 3261 §7.3.1 allows them: `;` separated, each a token name with an
/// optional `=` value (a token, host or quoted string), LWS around `;` and `=`. None for an
/// empty parameter (`;;`), a name that is not a token, or an unterminated quoted string: a
/// message with one gets 400 (RFC 4475 §3.1.2.1).
pub fn parse_header_params(input: &str) -> Option<Vec<(String, Option<String>)>> {
    if scan_outside_quotes(input, ';').1 {
        // An unterminated quoted string.
        return None;
    }
    let mut out = Vec::new();
    for raw in split_outside_quotes(input, ';') {
        let raw = raw.trim();
        let (name, value) = match raw.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (raw, None),
        };
        if name.is_empty() || !name.chars().all(is_token_char) || value == Some("") {
            return None;
        }
        out.push((name.to_string(), value.map(|v| unquote(v).to_string())));
    }
    Some(out)
}

/// Where `needle` stands outside quoted strings (RFC 3261 §25.1 quoted-string, with its
/// quoted-pairs), and whether a quoted string is still open at the end: the one walk that
/// splitting, searching and checking for an unterminated quote share.
pub fn scan_outside_quotes(input: &str, needle: char) -> (Vec<usize>, bool) {
    let mut found = Vec::new();
    let (mut in_quotes, mut escaped) = (false, false);
    for (i, c) in input.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && in_quotes {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == needle && !in_quotes {
            found.push(i);
        }
    }
    (found, in_quotes)
}

/// Splits on `sep` where it is not inside a quoted string.
pub fn split_outside_quotes(input: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for i in scan_outside_quotes(input, sep).0 {
        parts.push(&input[start..i]);
        start = i + sep.len_utf8();
    }
    parts.push(&input[start..]);
    parts
}

/// Removes surrounding double quotes, if any (escapes are kept as written).
pub fn unquote(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Writes header parameters (`;k=v`), quoting a value that is not a token.
pub fn write_params(out: &mut String, params: &[(String, Option<String>)]) {
    write_params_where(out, params, |v| {
        v.chars().all(is_token_char) || v.starts_with('[')
    });
}

/// Writes URI parameters (RFC 3261 §19.1.1): a value of paramchars as it is (a quoted string
/// is not a URI parameter value: `;gr=urn:uuid:…` must stay as it is); anything else, which
/// only a malformed input can bring, quoted as before.
pub fn write_uri_params(out: &mut String, params: &[(String, Option<String>)]) {
    write_params_where(out, params, |v| v.chars().all(is_param_char));
}

/// `;k=v` parameters; values for which `bare` is false are quoted.
fn write_params_where(
    out: &mut String,
    params: &[(String, Option<String>)],
    bare: impl Fn(&str) -> bool,
) {
    for (k, v) in params {
        out.push(';');
        out.push_str(k);
        if let Some(v) = v {
            out.push('=');
            if bare(v) {
                out.push_str(v);
            } else {
                out.push('"');
                out.push_str(v);
                out.push('"');
            }
        }
    }
}

/// RFC 3261 paramchar: unreserved, param-unreserved, or part of an escape.
fn is_param_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()[]/:&+$%".contains(c)
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Replaces (or adds) a parameter, matching its name case-insensitively.
pub fn set_param(params: &mut Vec<(String, Option<String>)>, name: &str, value: Option<&str>) {
    params.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    params.push((name.to_string(), value.map(str::to_string)));
}

/// Case-insensitive lookup of a parameter.
pub fn param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v = r#""Doe, J" <sip:a@b;x=1,2>;q=1, <sip:c@d>"#;
        assert_eq!(
            split_comma_list(v),
            vec![r#""Doe, J" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>"]
        );
    }

    #[test]
    fn params_with_quoted_values() {
        let p = parse_params(r#"expires=60;+sip.instance="<urn:uuid:1;2>";lr"#);
        assert_eq!(param(&p, "+SIP.INSTANCE"), Some(Some("<urn:uuid:1;2>")));
        assert_eq!(param(&p, "lr"), Some(None));
        assert_eq!(param(&p, "expires"), Some(Some("60")));
    }
}
