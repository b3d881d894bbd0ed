//! How metadata keys are recognized as secrets, and how secrets inside
//! string values (URL credentials, query parameters, bearer tokens, JWTs)
//! are masked. [`crate::EventPolicy`] applies both.
//!
//! A key is read two ways:
//!
//! - its *normalized* form: lowercase ASCII letters and digits only, so
//!   `X-Api-Key`, `api_key` and `apiKey` all read `apikey`;
//! - its *tokens*: the runs of letters or digits between separators (any
//!   character that is not an ASCII letter or digit), case changes
//!   (`accessToken` is `access`, `token`; `HTTPAuth` is `http`, `auth`) and
//!   letter-digit changes (`pass2` is `pass`, `2`).
//!
//! Long, distinctive words (`password`, `token`, `cookie`) match anywhere in
//! the normalized key, so `user_password` and `XSRF-TOKEN` are caught. Short
//! words that are also parts of innocent words (`auth` in `author`, `pass` in
//! `passenger`, `otp` in `footprint`) match only as a whole token.

/// Redact words matched anywhere in the normalized key.
pub(crate) const DEFAULT_REDACT_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "pwd",
    "secret",
    "token",
    "authorization",
    "bearer",
    "cookie",
    "apikey",
    "privatekey",
    "accesskey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "sessionkey",
    "credential",
    "signature",
    "jwt",
    "csrf",
    "xsrf",
    // Session and login cookies whose names carry a suffix.
    "aspsessionid",
    "aspxauth",
    "wordpressloggedin",
    "wordpresssec",
];

/// Redact words matched only as a whole token.
pub(crate) const DEFAULT_REDACT_TOKENS: &[&str] =
    &["auth", "pass", "pin", "otp", "totp", "hotp", "cred", "creds", "sig"];

/// Hash words matched at the end of the normalized key.
pub(crate) const DEFAULT_HASH_WORDS: &[&str] = &["sessionid", "sessid"];

/// Hash words matched as the key's last token.
pub(crate) const DEFAULT_HASH_TOKENS: &[&str] = &["session", "sess", "sid"];

/// The member names that make an object a name-value pair, such as
/// `{"name": "Authorization", "value": "Bearer …"}`, normalized.
const PAIR_NAMES: &[&str] = &["name", "key", "header", "headername", "field", "param", "parameter"];
/// The member names that hold a pair's value, normalized.
const PAIR_VALUES: &[&str] = &["value", "values"];

/// What a key's value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyClass {
    /// An ordinary value, kept (and its strings scrubbed).
    Keep,
    /// A session identifier: replaced by its SHA-256, so it stays correlatable.
    Hash,
    /// A secret: replaced by [`crate::REDACTED`].
    Redact,
}

/// The rules of one policy, normalized.
#[derive(Debug, Clone)]
pub(crate) struct KeyRules {
    pub(crate) redact_words: Vec<String>,
    pub(crate) redact_tokens: Vec<String>,
    pub(crate) hash_words: Vec<String>,
    pub(crate) hash_tokens: Vec<String>,
}

fn owned(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| normalize_key(word)).collect()
}

impl KeyRules {
    pub(crate) fn defaults() -> Self {
        Self {
            redact_words: owned(DEFAULT_REDACT_WORDS),
            redact_tokens: owned(DEFAULT_REDACT_TOKENS),
            hash_words: owned(DEFAULT_HASH_WORDS),
            hash_tokens: owned(DEFAULT_HASH_TOKENS),
        }
    }

    /// How a member named `key` is treated.
    pub(crate) fn classify(&self, key: &str) -> KeyClass {
        let tokens = tokens(key);
        let normalized: String = tokens.concat();
        if normalized.is_empty() {
            return KeyClass::Keep;
        }
        let hashed = self
            .hash_words
            .iter()
            .any(|word| !word.is_empty() && normalized.ends_with(word.as_str()))
            || tokens
                .last()
                .is_some_and(|last| self.hash_tokens.iter().any(|word| word == last));
        if hashed {
            return KeyClass::Hash;
        }
        let redacted = self
            .redact_words
            .iter()
            .any(|word| !word.is_empty() && normalized.contains(word.as_str()))
            || tokens
                .iter()
                .any(|token| self.redact_tokens.iter().any(|word| word == token));
        if redacted { KeyClass::Redact } else { KeyClass::Keep }
    }

    /// Whether the normalized member name marks the name of a pair.
    pub(crate) fn is_pair_name(key: &str) -> bool {
        PAIR_NAMES.contains(&normalize_key(key).as_str())
    }

    /// Whether the normalized member name marks the value of a pair.
    pub(crate) fn is_pair_value(key: &str) -> bool {
        PAIR_VALUES.contains(&normalize_key(key).as_str())
    }
}

/// Lowercase ASCII letters and digits, everything else removed.
pub(crate) fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The key's tokens, lowercased: see the module docs.
pub(crate) fn tokens(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (index, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some(&previous) = index.checked_sub(1).and_then(|i| chars.get(i))
            && !current.is_empty()
        {
            let next = chars.get(index + 1).copied();
            let boundary =
                // fooBar
                (previous.is_ascii_lowercase() && c.is_ascii_uppercase())
                // HTTPAuth: the last capital of a run starts a word
                || (previous.is_ascii_uppercase() && c.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
                // pass2, 2fa
                || (previous.is_ascii_digit() != c.is_ascii_digit());
            if boundary {
                out.push(std::mem::take(&mut current));
            }
        }
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Masks secrets inside a string value: URL credentials
/// (`https://user:[REDACTED]@host`), secret query and form parameters
/// (`?token=[REDACTED]`), `key: value` and `key=value` pairs whose key is a
/// secret, bearer tokens and JWTs. Returns `None` when nothing changed.
pub(crate) fn scrub_text(rules: &KeyRules, text: &str) -> Option<String> {
    let mut changed = false;
    let mut current = text.to_owned();
    let passes: [fn(&KeyRules, &str) -> Option<String>; 4] = [url_credentials, parameters, bearer_tokens, jwts];
    for pass in passes {
        if let Some(next) = pass(rules, &current) {
            current = next;
            changed = true;
        }
    }
    changed.then_some(current)
}

fn url_credentials(_rules: &KeyRules, text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let start = search + found + 3;
        search = start;
        // The authority ends at the first of / ? # or whitespace.
        let end = bytes[start..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>') || b.is_ascii_whitespace())
            .map_or(bytes.len(), |offset| start + offset);
        let Some(at) = text[start..end].rfind('@').map(|offset| start + offset) else {
            continue;
        };
        if at == start {
            continue;
        }
        let userinfo = &text[start..at];
        let masked_from = match userinfo.find(':') {
            Some(colon) => start + colon + 1,
            None => start,
        };
        if &text[masked_from..at] == crate::REDACTED || masked_from == at {
            continue;
        }
        out.push_str(&text[copied..masked_from]);
        out.push_str(crate::REDACTED);
        copied = at;
        search = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b'[' | b']')
}

/// `name=value` after the start, `?`, `&`, `;`, `,`, a quote, a bracket or
/// whitespace, and `name: value`, also quoted as in JSON (`"name": "value"`),
/// whose name is a secret. An unquoted `name: value` runs to the end of the
/// line, as header values (`Authorization: Basic …`) do.
fn parameters(rules: &KeyRules, text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let skip_blanks = |mut at: usize| {
        while bytes.get(at).is_some_and(|b| *b == b' ' || *b == b'\t') {
            at += 1;
        }
        at
    };
    let mut out = String::new();
    let mut copied = 0;
    let mut position = 0;
    while position < bytes.len() {
        let at_boundary = position == 0
            || matches!(
                bytes[position - 1],
                b'?' | b'&' | b';' | b',' | b'"' | b'\'' | b'(' | b'{' | b'['
            )
            || bytes[position - 1].is_ascii_whitespace();
        if !at_boundary || !is_name_byte(bytes[position]) {
            position += 1;
            continue;
        }
        let name_end = bytes[position..]
            .iter()
            .position(|&b| !is_name_byte(b))
            .map_or(bytes.len(), |offset| position + offset);
        let name = &text[position..name_end];
        let quoted_name = matches!(bytes.get(name_end), Some(b'"' | b'\''));
        let mut cursor = skip_blanks(if quoted_name { name_end + 1 } else { name_end });
        let colon = match bytes.get(cursor) {
            Some(b'=') => false,
            Some(b':') if !text[cursor..].starts_with("://") => true,
            _ => {
                position = name_end;
                continue;
            }
        };
        if rules.classify(name) == KeyClass::Keep {
            position = cursor + 1;
            continue;
        }
        cursor = skip_blanks(cursor + 1);
        let (value_start, value_end) = match bytes.get(cursor) {
            Some(&quote @ (b'"' | b'\'')) => {
                let start = cursor + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(bytes.len(), |offset| start + offset);
                (start, end)
            }
            _ => {
                let to_line_end = colon && !quoted_name;
                let end = bytes[cursor..]
                    .iter()
                    .position(|&b| {
                        if to_line_end {
                            matches!(b, b'\r' | b'\n' | b'"')
                        } else {
                            matches!(
                                b,
                                b'&' | b';' | b'#' | b',' | b'"' | b'\'' | b'<' | b'>' | b')' | b'}' | b']'
                            ) || b.is_ascii_whitespace()
                        }
                    })
                    .map_or(bytes.len(), |offset| cursor + offset);
                (cursor, end)
            }
        };
        if text[value_start..].starts_with(crate::REDACTED) {
            position = value_start + crate::REDACTED.len();
            continue;
        }
        if value_end > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(crate::REDACTED);
            copied = value_end;
        }
        position = value_end.max(position + 1);
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

fn is_token68(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer <token>` with a token of at least 8 characters.
fn bearer_tokens(_rules: &KeyRules, text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("bearer ") {
        let word = search + found;
        let start = word + "bearer ".len();
        search = start;
        if word > 0 && bytes[word - 1].is_ascii_alphanumeric() {
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|&b| !is_token68(b))
            .map_or(bytes.len(), |offset| start + offset);
        if end - start < 8 {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(crate::REDACTED);
        copied = end;
        search = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_')
}

/// A JWT: `eyJ…` `.` `eyJ…` `.` signature.
fn jwts(_rules: &KeyRules, text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let segment = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| !is_base64url(b))
            .map_or(bytes.len(), |offset| from + offset)
    };
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("eyJ") {
        let start = search + found;
        search = start + 3;
        if start > 0 && is_base64url(bytes[start - 1]) {
            continue;
        }
        let header_end = segment(start);
        if bytes.get(header_end) != Some(&b'.') || !text[header_end + 1..].starts_with("eyJ") {
            continue;
        }
        let payload_end = segment(header_end + 1);
        if bytes.get(payload_end) != Some(&b'.') {
            continue;
        }
        let end = segment(payload_end + 1);
        out.push_str(&text[copied..start]);
        out.push_str(crate::REDACTED);
        copied = end;
        search = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_at_separators_case_and_digits() {
        assert_eq!(tokens("accessToken"), ["access", "token"]);
        assert_eq!(tokens("X-Api-Key"), ["x", "api", "key"]);
        assert_eq!(tokens("HTTPAuthHeader"), ["http", "auth", "header"]);
        assert_eq!(tokens("PHPSESSID"), ["phpsessid"]);
        assert_eq!(tokens("connect.sid"), ["connect", "sid"]);
        assert_eq!(tokens("pass2"), ["pass", "2"]);
        assert_eq!(
            tokens("__Host-next-auth.session-token"),
            ["host", "next", "auth", "session", "token"]
        );
        assert!(tokens("--").is_empty());
    }

    #[test]
    fn classification() {
        let rules = KeyRules::defaults();
        for secret in [
            "password",
            "user_password",
            "auth",
            "X-Auth",
            "authToken",
            "jwt",
            "bearer",
            "pwd",
            "db_pass",
            "pass",
            "passcode",
            "otp",
            "otp_code",
            "csrf",
            "_csrf",
            "XSRF-TOKEN",
            "refresh_token",
            "client_secret",
            "private_key",
            "x-api-key",
            "Authorization",
            "Proxy-Authorization",
            "cookie",
            "Set-Cookie",
            "ASPSESSIONIDQQGGGNCG",
            ".ASPXAUTH",
            "wordpress_logged_in_0123abcd",
            "X-Amz-Signature",
            "pin",
        ] {
            assert_eq!(rules.classify(secret), KeyClass::Redact, "{secret}");
        }
        for session in [
            "session",
            "sessionid",
            "session_id",
            "SessionId",
            "sid",
            "connect.sid",
            "PHPSESSID",
            "JSESSIONID",
            "ASP.NET_SessionId",
            "laravel_session",
            "_session_id",
            "rack.session",
            "ci_session",
            "_myapp_session",
            "_gh_sess",
        ] {
            assert_eq!(rules.classify(session), KeyClass::Hash, "{session}");
        }
        for innocent in [
            "author",
            "authors",
            "authority",
            "passenger",
            "passport_country",
            "bypass_cache",
            "compass",
            "footprint",
            "sidebar",
            "inside",
            "consider",
            "session_count",
            "spinner",
            "pinned",
            "keyboard",
            "primary_key",
            "name",
            "value",
            "description",
            "assessment",
            "obsession",
            "",
        ] {
            assert_eq!(rules.classify(innocent), KeyClass::Keep, "{innocent}");
        }
    }

    #[test]
    fn strings_are_scrubbed() {
        let rules = KeyRules::defaults();
        let cases = [
            (
                "https://ada:hunter2@db.example.com:5432/app",
                "https://ada:[REDACTED]@db.example.com:5432/app",
            ),
            ("https://ghp_abcdef@github.com/x", "https://[REDACTED]@github.com/x"),
            (
                "GET /cb?code=1&token=abc.def&state=s",
                "GET /cb?code=1&token=[REDACTED]&state=s",
            ),
            (
                "/x?api_key=K1&password=P1#frag",
                "/x?api_key=[REDACTED]&password=[REDACTED]#frag",
            ),
            (
                "login failed password=hunter2 for ada",
                "login failed password=[REDACTED] for ada",
            ),
            (
                "Authorization: Basic YWRhOmh1bnRlcjI=\nnext",
                "Authorization: [REDACTED]\nnext",
            ),
            ("sent Bearer abcdefgh12345 upstream", "sent Bearer [REDACTED] upstream"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end",
                "jwt [REDACTED] end",
            ),
            ("PHPSESSID=abc123; lang=en", "PHPSESSID=[REDACTED]; lang=en"),
            (
                r#"{"password": "hunter2", "user": "ada"}"#,
                r#"{"password": "[REDACTED]", "user": "ada"}"#,
            ),
            ("token = t0k3n!", "token = [REDACTED]"),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub_text(&rules, input).as_deref(), Some(expected), "{input}");
        }
        for untouched in [
            "https://example.com/a@b",
            "mail ada@example.com",
            "the bearer of news",
            "time: 12:00",
            "author=ada&page=2",
            "ratio=1:2",
            "",
        ] {
            assert_eq!(scrub_text(&rules, untouched), None, "{untouched}");
        }
        // Scrubbing is idempotent.
        let once = scrub_text(&rules, "https://a:b@h/?token=t").unwrap();
        assert_eq!(scrub_text(&rules, &once), None, "{once}");
    }
}
