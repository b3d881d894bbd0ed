//! PII and secret scrubbing for text that leaves the server, such as Sentry
//! events.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a redacted secret becomes.
const REDACTED: &str = "[redacted]";
/// What an email address becomes.
const EMAIL: &str = "[email]";
/// What an IP address becomes.
const IP: &str = "[ip]";

/// Keys whose value is a secret, matched case-insensitively at a word start,
/// followed by `=` or `:`. The flag says whether the value runs to the end of
/// the line (headers such as `Authorization: Bearer abc`).
const SECRET_KEYS: &[(&str, bool)] = &[
    ("authorization", true),
    ("proxy-authorization", true),
    ("set-cookie", true),
    ("cookie", true),
    ("password", false),
    ("passwd", false),
    ("pwd", false),
    ("secret", false),
    ("token", false),
    ("api_key", false),
    ("api-key", false),
    ("apikey", false),
    ("private_key", false),
    ("session", false),
    ("sessionid", false),
    ("session_id", false),
    ("credentials", false),
];

/// Redacts what looks like personal data or a secret:
///
/// - the value after `password=`, `token:`, `api_key=`, `secret=`,
///   `session_id=` and similar keys, also in JSON (`"password":"..."`), and
///   whole `Authorization` and `Cookie` header values;
/// - bearer and basic credentials (`Bearer abc…`);
/// - credentials in URLs (`postgres://user:pass@host`);
/// - email addresses;
/// - IPv4 and IPv6 addresses, with or without a port.
///
/// It errs on the side of redacting: a version number such as `1.2.3.4`
/// reads as an address. Text with nothing to redact is borrowed.
///
/// ```
/// use zt_monitoring::scrub_pii;
///
/// let scrubbed = scrub_pii("login failed for ada@example.com from 203.0.113.9:443, password=hunter2");
/// assert_eq!(scrubbed, "login failed for [email] from [ip]:443, password=[redacted]");
/// ```
pub fn scrub_pii(text: &str) -> Cow<'_, str> {
    let mut out = secrets(text);
    out = bearer(&out);
    out = url_credentials(&out);
    out = emails(&out);
    out = addresses(&out);
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

fn secrets(text: &str) -> String {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let lower = lower.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut position = 0;
    while position < bytes.len() {
        let at_word_start = position == 0 || !is_word(bytes[position - 1]);
        let value = at_word_start
            .then(|| {
                SECRET_KEYS
                    .iter()
                    .filter(|(key, _)| lower[position..].starts_with(key.as_bytes()))
                    .find_map(|&(key, to_line_end)| secret_value(bytes, position + key.len(), to_line_end))
            })
            .flatten();
        let Some((start, end)) = value else {
            position += 1;
            continue;
        };
        if end > start && &text[start..end] != REDACTED {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
        position = end.max(position + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// Finds the value after a key that ends at `cursor`: an optional closing
/// quote, `=` or `:`, then the value, quoted or not.
fn secret_value(bytes: &[u8], mut cursor: usize, to_line_end: bool) -> Option<(usize, usize)> {
    // The key must end here: `tokens=` is not `token=`.
    if cursor < bytes.len() && (is_word(bytes[cursor]) || bytes[cursor] == b'_') {
        return None;
    }
    if cursor < bytes.len() && matches!(bytes[cursor], b'"' | b'\'') {
        cursor += 1;
    }
    while cursor < bytes.len() && bytes[cursor] == b' ' {
        cursor += 1;
    }
    if cursor >= bytes.len() || !matches!(bytes[cursor], b'=' | b':') {
        return None;
    }
    cursor += 1;
    while cursor < bytes.len() && bytes[cursor] == b' ' {
        cursor += 1;
    }
    let quote = (cursor < bytes.len() && matches!(bytes[cursor], b'"' | b'\'')).then(|| bytes[cursor]);
    if quote.is_some() {
        cursor += 1;
    }
    let start = cursor;
    while cursor < bytes.len() {
        let byte = bytes[cursor];
        let end = match quote {
            Some(quote) => byte == quote,
            None if to_line_end => matches!(byte, b'\n' | b'\r' | b'"' | b'\''),
            None => byte.is_ascii_whitespace() || matches!(byte, b'&' | b',' | b';' | b'"' | b'\'' | b'}' | b')'),
        };
        if end {
            break;
        }
        cursor += 1;
    }
    Some((start, cursor))
}

fn bearer(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut position = 0;
    while position < bytes.len() {
        let scheme = ["bearer ", "basic "]
            .into_iter()
            .find(|scheme| lower.as_bytes()[position..].starts_with(scheme.as_bytes()));
        let at_word_start = position == 0 || !is_word(bytes[position - 1]);
        let Some(scheme) = scheme.filter(|_| at_word_start) else {
            position += 1;
            continue;
        };
        let start = position + scheme.len();
        let mut end = start;
        while end < bytes.len()
            && (is_word(bytes[end]) || matches!(bytes[end], b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='))
        {
            end += 1;
        }
        // "basic auth failed" is prose; a credential is long.
        let minimum = if scheme == "basic " { 8 } else { 1 };
        if end - start >= minimum && &text[start..end] != REDACTED {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
        position = end.max(position + 1);
    }
    out.push_str(&text[copied..]);
    out
}

fn url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let start = found + 3;
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let authority_end = rest.find(|c: char| c == '/' || c.is_whitespace()).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && at > 0
            && &rest[..at] != REDACTED
        {
            out.push_str(REDACTED);
            rest = &rest[at..];
        }
    }
    out.push_str(rest);
    out
}

fn emails(text: &str) -> String {
    let bytes = text.as_bytes();
    let local = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut position = 0;
    while let Some(offset) = text[position..].find('@') {
        let at = position + offset;
        let mut start = at;
        while start > copied && local(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && domain(bytes[end]) {
            end += 1;
        }
        // A domain ends in a dot and two letters or more; trailing dots belong to the sentence.
        let host = text[at + 1..end].trim_end_matches(['.', '-']);
        let end = at + 1 + host.len();
        let tld_ok = host.rsplit_once('.').is_some_and(|(name, tld)| {
            !name.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if start < at && tld_ok {
            out.push_str(&text[copied..start]);
            out.push_str(EMAIL);
            copied = end;
        }
        position = end.max(at + 1);
    }
    out.push_str(&text[copied..]);
    out
}

fn addresses(text: &str) -> String {
    let run_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '%');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(run_char) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let len = rest.find(|c: char| !run_char(c)).unwrap_or(rest.len());
        let run = &rest[..len];
        out.push_str(&redact_address(run));
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// Redacts an address in a run of address-like characters, keeping a port
/// and trailing punctuation.
fn redact_address(run: &str) -> Cow<'_, str> {
    let trimmed = run.trim_end_matches(['.', ':']);
    let tail = &run[trimmed.len()..];
    let host = trimmed.split('%').next().unwrap_or(trimmed);
    let is_v6 = host.contains(':') && host.matches(':').count() >= 2 && host.parse::<Ipv6Addr>().is_ok();
    if host.parse::<Ipv4Addr>().is_ok() || is_v6 {
        return Cow::Owned(format!("{IP}{tail}"));
    }
    if let Some((address, port)) = trimmed.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && address.parse::<Ipv4Addr>().is_ok()
    {
        return Cow::Owned(format!("{IP}:{port}{tail}"));
    }
    Cow::Borrowed(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_after_keys_are_redacted() {
        let cases = [
            ("password=hunter2 next", "password=[redacted] next"),
            ("PASSWORD: hunter2", "PASSWORD: [redacted]"),
            ("db_password=x&user=y", "db_password=[redacted]&user=y"),
            ("access_token=abc.def", "access_token=[redacted]"),
            (
                r#"{"password":"hunter 2","user":"ada"}"#,
                r#"{"password":"[redacted]","user":"ada"}"#,
            ),
            ("Authorization: Bearer abc.def\nnext", "Authorization: [redacted]\nnext"),
            ("cookie: a=1; b=2", "cookie: [redacted]"),
            ("api_key='sk_live_123'", "api_key='[redacted]'"),
            ("password for user app_rw rejected", "password for user app_rw rejected"),
            ("tokens=5 passwords: none", "tokens=5 passwords: none"),
            (
                "sessionid=abc session_id=def",
                "sessionid=[redacted] session_id=[redacted]",
            ),
            ("ünïcode password=ß€", "ünïcode password=[redacted]"),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub_pii(input), expected, "{input}");
        }
    }

    #[test]
    fn bearer_tokens_and_url_credentials_are_redacted() {
        assert_eq!(scrub_pii("sent Bearer eyJhbGciOi.x-y_z"), "sent Bearer [redacted]");
        assert_eq!(scrub_pii("basic auth failed"), "basic auth failed");
        assert_eq!(scrub_pii("Basic QWxhZGRpbjpvcGVu"), "Basic [redacted]");
        assert_eq!(
            scrub_pii("postgres://app:s3cret@db.internal/app"),
            "postgres://[redacted]@db.internal/app"
        );
        assert_eq!(scrub_pii("see https://example.com/a@b"), "see https://example.com/a@b");
    }

    #[test]
    fn emails_are_redacted() {
        assert_eq!(scrub_pii("user ada.l+x@example.co.uk."), "user [email].");
        assert_eq!(scrub_pii("a@b, @handle, x@localhost"), "a@b, @handle, x@localhost");
    }

    #[test]
    fn addresses_are_redacted() {
        let cases = [
            ("connect 10.0.3.7:5432 refused", "connect [ip]:5432 refused"),
            ("from 203.0.113.9.", "from [ip]."),
            ("peer 2001:db8::1 and [::1]:80", "peer [ip] and [[ip]]:80"),
            ("fe80::1%eth0 down", "[ip] down"),
            ("at 12:30:45 in std::io::Error", "at 12:30:45 in std::io::Error"),
            ("999.1.1.1 is not one", "999.1.1.1 is not one"),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub_pii(input), expected, "{input}");
        }
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(scrub_pii("nothing to see"), Cow::Borrowed(_)));
        assert_eq!(scrub_pii("é ü 日本"), "é ü 日本");
    }
}
