//! Database URLs, and keeping their secrets out of every message.
//!
//! A PostgreSQL connection string reaches libpq as given, in either of its
//! forms: a `postgres://` URI or `key=value` pairs. Before that, zt reads it
//! the way libpq will, to know its secrets: the password in the user info,
//! the `password`, `sslpassword`, `sslkey` (and `oauth_client_secret`)
//! parameters. [`DatabaseUrl`]'s `Display` and `Debug` show it with those
//! replaced by `***`, and [`DatabaseUrl::scrub`] removes them from a driver's
//! message, since libpq quotes parts of a connection string it rejects.
//!
//! A string that libpq and a URL parser would read differently (say, a raw
//! `@` in a password, which libpq splits at the first `@` and a URL parser at
//! the last) is refused with a message that quotes none of it, rather than
//! risking a password shown as a host name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use percent_encoding::percent_decode_str;

use crate::error::{Error, ErrorKind};

/// Which backend a URL or pool is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// A parsed database URL.
///
/// - `sqlite://zt-demo.db`, `sqlite:zt-demo.db`: a file relative to the
///   current directory; `sqlite:///var/lib/app/audit.db`: an absolute path.
/// - `postgres://user:password@host:5432/db?sslmode=require` (or
///   `postgresql://`), multi-host URIs such as
///   `postgres://h1:5432,h2:5433/db?target_session_attrs=read-write`, and
///   libpq's `key=value` strings such as
///   `host=db port=5432 user=app password='x y' dbname=prod`: passed to
///   libpq as given.
///
/// `Display` and `Debug` hide every secret, so a URL can go into an error
/// message or a log: the user-info password, and the `password`,
/// `sslpassword` and `sslkey` parameters, in either form.
///
/// ```
/// use zt_db::{Backend, DatabaseUrl};
/// let url: DatabaseUrl = "postgres://app:s3cret@db:5432/prod?sslpassword=k3y".parse()?;
/// assert_eq!(url.backend(), Backend::Postgres);
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/prod?sslpassword=***");
/// let url: DatabaseUrl = "host=db user=app password='x y' dbname=prod".parse()?;
/// assert_eq!(url.to_string(), "host=db user=app password=*** dbname=prod");
/// assert!("mysql://x".parse::<DatabaseUrl>().is_err());
/// # Ok::<(), zt_db::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string, a URI or libpq `key=value` pairs.
    Postgres(String),
}

impl DatabaseUrl {
    /// The backend.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL or path as the driver takes it. For PostgreSQL this includes
    /// the password; do not log it.
    pub fn connection_string(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => url.clone(),
        }
    }

    /// The SQLite file, for an SQLite URL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }

    /// `text`, such as a driver's error message, with this URL's secrets
    /// replaced by `***`, and the whole connection string by its redacted
    /// form. libpq quotes the parts of a connection string it rejects.
    pub fn scrub(&self, text: &str) -> String {
        match self {
            Self::Sqlite(_) => text.to_owned(),
            Self::Postgres(url) => Secrets::of_postgres(url).scrub(text),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self, Error> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return match analyze_uri(url) {
                Ok(_) => Ok(Self::Postgres(url.to_owned())),
                Err(why) => Err(invalid("PostgreSQL URL", &why)),
            };
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.contains('?') {
                // Not shown: SQLCipher-style parameters may hold a key.
                return Err(invalid(
                    "SQLite URL",
                    "query parameters are not supported for SQLite; zt sets its own pragmas",
                ));
            }
            let shown = |why: &str| Error::new(ErrorKind::InvalidUrl, format!("invalid database URL {url}: {why}"));
            if path.is_empty() {
                return Err(shown("it names no file; write sqlite://path/to/file.db"));
            }
            if path == ":memory:" || path.starts_with("file::memory:") {
                return Err(shown(
                    "in-memory SQLite gives every pooled connection its own database; use a file",
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if looks_like_conninfo(url) {
            return match analyze_conninfo(url) {
                Ok(_) => Ok(Self::Postgres(url.to_owned())),
                Err(why) => Err(invalid("libpq key=value connection string", &why)),
            };
        }
        // Not shown: whatever it is, it may be a password pasted in the wrong place.
        let hint = if is_bare_file_name(url) {
            "a file name is not a URL; write sqlite://PATH"
        } else {
            "expected sqlite://PATH, postgres://USER@HOST/DB or libpq key=value pairs"
        };
        Err(invalid("database URL", hint))
    }
}

/// An invalid-URL error that shows none of the URL.
fn invalid(what: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidUrl,
        format!("invalid {what} (not shown, as it may hold a password): {why}"),
    )
}

fn is_bare_file_name(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [".db", ".sqlite", ".sqlite3"].iter().any(|ext| lower.ends_with(ext))
        && !text.contains([':', '@', '=', '?'])
        && !text.contains(char::is_whitespace)
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&Secrets::of_postgres(url).redacted),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The parameters whose values are secret, in URIs and key=value strings
/// alike. Compared without regard to case: over-redacting is the safe side.
const SECRET_KEYS: &[&str] = &["password", "sslpassword", "sslkey", "oauth_client_secret"];

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|secret| secret.eq_ignore_ascii_case(key))
}

/// What replaces a secret.
const MASK: &str = "***";

/// A PostgreSQL connection string as it may be shown, and the secrets it holds.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    /// The connection string as given.
    raw: String,
    /// The connection string with its secrets masked.
    redacted: String,
    /// Each secret, as written and decoded; longest first.
    values: Vec<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({})", self.redacted)
    }
}

/// What a connection string that cannot be analysed is shown as.
const UNREADABLE: &str = "postgres (the connection string is not shown)";

impl Secrets {
    /// The secrets of a PostgreSQL connection string in either form.
    pub(crate) fn of_postgres(raw: &str) -> Self {
        let trimmed = raw.trim();
        let analysis = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            analyze_uri(trimmed)
        } else {
            analyze_conninfo(trimmed)
        };
        match analysis {
            Ok(Analysis { redacted, mut values }) => {
                values.retain(|value| !value.is_empty());
                values.sort_by_key(|value| std::cmp::Reverse(value.len()));
                values.dedup();
                Self {
                    raw: trimmed.to_owned(),
                    redacted,
                    values,
                }
            }
            // Unreadable, so its secrets are unknown: the scrub hides every
            // message that may quote it (see `scrub`).
            Err(_) => Self {
                raw: trimmed.to_owned(),
                redacted: UNREADABLE.to_owned(),
                values: Vec::new(),
            },
        }
    }

    /// `text` with the connection string and every secret masked. For a
    /// connection string that could not be analysed, a message that quotes
    /// any part of it is withheld entirely.
    pub(crate) fn scrub(&self, text: &str) -> String {
        if self.raw.is_empty() {
            return text.to_owned();
        }
        if self.redacted == UNREADABLE {
            let quotes_it = self
                .raw
                .split(|c: char| c.is_whitespace() || "=:@/?&,'\"".contains(c))
                .any(|piece| piece.len() >= 3 && text.contains(piece));
            return if quotes_it {
                "the driver's message is withheld: it quotes a connection string that zt could not read".to_owned()
            } else {
                text.to_owned()
            };
        }
        let mut out = text.replace(&self.raw, &self.redacted);
        for value in &self.values {
            out = out.replace(value.as_str(), MASK);
        }
        out
    }
}

/// A connection string read: its redacted form and its secrets.
struct Analysis {
    redacted: String,
    values: Vec<String>,
}

/// Percent-decoded, as libpq decodes URI components.
fn decoded(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// A host that stands in for a host list the URL parser cannot read.
const PLACEHOLDER_HOST: &str = "zt-host-list.invalid";

/// Reads a `postgres://` or `postgresql://` URI the way libpq does.
///
/// The URL is parsed with the `url` crate. A multi-host list
/// (`h1:5432,h2:5433`), which it cannot read as one host and port, and an
/// empty host (`postgres://user@/db`, the default socket) are handled
/// explicitly: the list is checked host by host, swapped for a placeholder
/// while the rest is parsed, and put back as given.
fn analyze_uri(text: &str) -> Result<Analysis, String> {
    let (scheme, rest) = text.split_once("://").ok_or_else(|| "it has no scheme".to_owned())?;
    if rest.is_empty() || rest == "/" {
        return Err("it names no host or database".into());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters; percent-encode them".into());
    }
    if text.contains('#') {
        return Err(
            "it contains '#', which libpq reads as text but a URL parser as a fragment; \
             percent-encode it as %23"
                .into(),
        );
    }
    check_percent_encoding(text)?;
    // libpq takes the user info up to the first '@' before any '/'; a URL
    // parser up to the last '@' before any '/' or '?'. Where they could
    // disagree, refuse.
    let up_to_path = rest.split('/').next().unwrap_or_default();
    match up_to_path.matches('@').count() {
        0 => {}
        1 if !up_to_path.split('@').next().unwrap_or_default().contains('?') => {}
        _ => {
            return Err("the user info is ambiguous; percent-encode '@' as %40 and '?' as %3F \
                 in a user name or password"
                .into());
        }
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // An '@' in the database name is most often a password with a '/' in it
    // (`user:12/34@host`), which both parsers read as a port and a path.
    let path = rest[authority_end..].split('?').next().unwrap_or_default();
    if path.contains('@') {
        return Err("it has an '@' after the host; percent-encode '/' in a password as %2F,              and '@' in a database name as %40"
            .into());
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let explicit_hosts = hosts.is_empty() || hosts.contains(',');
    let parsed_text = if explicit_hosts {
        for host in hosts.split(',').filter(|_| !hosts.is_empty()) {
            check_one_host(host)?;
        }
        let userinfo = userinfo.map(|info| format!("{info}@")).unwrap_or_default();
        format!("{scheme}://{userinfo}{PLACEHOLDER_HOST}{}", &rest[authority_end..])
    } else {
        text.to_owned()
    };
    let mut url = url::Url::parse(&parsed_text).map_err(|e| format!("it is not a valid URL ({e})"))?;
    let mut values = Vec::new();
    if let Some(password) = url.password() {
        values.push(password.to_owned());
        values.push(decoded(password));
        url.set_password(Some(MASK))
            .map_err(|()| "its password cannot be redacted".to_owned())?;
    }
    if let Some(query) = url.query() {
        let redacted = redact_query(query, &mut values)?;
        url.set_query(Some(&redacted));
    }
    let mut redacted = url.to_string();
    if explicit_hosts {
        redacted = format!(
            "{}{hosts}{}",
            &url[..url::Position::BeforeHost],
            &url[url::Position::AfterPort..]
        );
    }
    Ok(Analysis { redacted, values })
}

/// One host of a multi-host list: `name`, `name:port`, `[v6]` or `[v6]:port`.
fn check_one_host(host: &str) -> Result<(), String> {
    let bad = || "its host list has an empty or malformed host".to_owned();
    if host.is_empty() {
        return Err(bad());
    }
    let url = url::Url::parse(&format!("postgres://{host}")).map_err(|_| bad())?;
    if url.host_str().is_none_or(str::is_empty) || !url.path().is_empty() {
        return Err(bad());
    }
    Ok(())
}

/// Every '%' starts a valid escape, and none decodes to NUL: libpq quotes the
/// whole component in its error otherwise.
fn check_percent_encoding(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        if byte == b'%' {
            let escape = bytes.get(i + 1..i + 3);
            let valid = escape.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return Err("a '%' must start a percent-escape; write a literal '%' as %25".into());
            }
            if escape == Some(b"00") {
                return Err("it contains %00, which libpq refuses".into());
            }
        }
    }
    Ok(())
}

/// The query with the values of secret keys masked; collects those values.
/// Each parameter must be `key=value`, as libpq requires, with a libpq
/// keyword for its key: an unknown one is most often the tail of a value
/// with an unencoded '&' (`password=a&b=c`), so it is refused unseen.
fn redact_query(query: &str, values: &mut Vec<String>) -> Result<String, String> {
    let pieces: Vec<&str> = query.split('&').collect();
    let mut out = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        if piece.is_empty() && index + 1 == pieces.len() {
            continue;
        }
        let Some((key, value)) = piece.split_once('=') else {
            return Err(format!("query parameter {} has no '='", index + 1));
        };
        if value.contains('=') {
            return Err(format!(
                "query parameter {} has a second '='; percent-encode it as %3D",
                index + 1
            ));
        }
        let key_text = decoded(key);
        if !(LIBPQ_KEYWORDS.contains(&key_text.as_str()) || key_text == "ssl") {
            return Err(format!(
                "query parameter {} is not a libpq parameter; percent-encode '&' in values as %26",
                index + 1
            ));
        }
        if is_secret_key(&key_text) {
            values.push(value.to_owned());
            values.push(decoded(value));
            out.push(format!("{key}={MASK}"));
        } else {
            out.push((*piece).to_owned());
        }
    }
    Ok(out.join("&"))
}

/// Whether `text` reads as libpq `key=value` pairs: it starts with a keyword
/// and an '='.
fn looks_like_conninfo(text: &str) -> bool {
    let keyword_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (keyword, rest) = text.split_at(keyword_end);
    keyword.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && rest.trim_start_matches(is_libpq_space).starts_with('=')
}

/// libpq's `isspace`.
fn is_libpq_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// libpq's connection keywords (PostgreSQL 18). A keyword outside this list
/// is most often the tail of an unquoted value with a space in it, such as
/// `password=two words`, so it is refused without being shown.
const LIBPQ_KEYWORDS: &[&str] = &[
    "application_name",
    "channel_binding",
    "client_encoding",
    "connect_timeout",
    "dbname",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "host",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "krbsrvname",
    "load_balance_hosts",
    "max_protocol_version",
    "min_protocol_version",
    "oauth_ca_file",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_issuer",
    "oauth_scope",
    "options",
    "passfile",
    "password",
    "port",
    "replication",
    "require_auth",
    "requirepeer",
    "requiressl",
    "scram_client_key",
    "scram_server_key",
    "service",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslkeylogfile",
    "sslmode",
    "sslnegotiation",
    "sslpassword",
    "sslrootcert",
    "sslsni",
    "target_session_attrs",
    "tcp_user_timeout",
    "user",
];

/// One `keyword=value` of a libpq connection string.
struct Pair<'a> {
    keyword: &'a str,
    /// The value as written, without its quotes.
    written: &'a str,
    /// The value as libpq reads it: quotes removed, backslash escapes resolved.
    value: String,
}

/// Parses libpq `key=value` pairs exactly as libpq's `conninfo_parse` does,
/// but refuses what libpq would quote back in an error.
fn parse_conninfo(text: &str) -> Result<Vec<Pair<'_>>, String> {
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    let after = |pairs: &[Pair<'_>]| match pairs.last() {
        Some(pair) => format!("after `{}`'s value", pair.keyword),
        None => "at the start".to_owned(),
    };
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(is_libpq_space);
        if rest.is_empty() {
            break;
        }
        let keyword_end = rest.find(|c: char| c == '=' || is_libpq_space(c)).unwrap_or(rest.len());
        let keyword = &rest[..keyword_end];
        rest = rest[keyword_end..].trim_start_matches(is_libpq_space);
        let Some(value_start) = rest.strip_prefix('=') else {
            return Err(format!(
                "a word with no '=' comes {}; put values that hold spaces in single quotes",
                after(&pairs)
            ));
        };
        if !LIBPQ_KEYWORDS.contains(&keyword) {
            return Err(format!(
                "an unknown keyword comes {}; put values that hold spaces in single quotes",
                after(&pairs)
            ));
        }
        rest = value_start.trim_start_matches(is_libpq_space);
        let mut value = String::new();
        let written;
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '\'' => {
                        end = Some(i);
                        break;
                    }
                    other => value.push(other),
                }
            }
            let Some(end) = end else {
                return Err(format!("`{keyword}`'s quoted value is not terminated"));
            };
            written = &quoted[..end];
            rest = &quoted[end + 1..];
        } else {
            let mut chars = rest.char_indices();
            let mut end = rest.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    c if is_libpq_space(c) => {
                        end = i;
                        break;
                    }
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    other => value.push(other),
                }
            }
            written = &rest[..end];
            rest = &rest[end..];
        }
        pairs.push(Pair {
            keyword,
            written,
            value,
        });
    }
    if pairs.is_empty() {
        return Err("it holds no key=value pair".into());
    }
    Ok(pairs)
}

/// A value written so that libpq reads it back as it is.
fn quote_conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| is_libpq_space(c) || c == '\'' || c == '\\') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn analyze_conninfo(text: &str) -> Result<Analysis, String> {
    let pairs = parse_conninfo(text)?;
    let mut values = Vec::new();
    let mut shown = Vec::with_capacity(pairs.len());
    for pair in &pairs {
        if is_secret_key(pair.keyword) {
            values.push(pair.written.to_owned());
            values.push(pair.value.clone());
            shown.push(format!("{}={MASK}", pair.keyword));
        } else {
            shown.push(format!("{}={}", pair.keyword, quote_conninfo_value(&pair.value)));
        }
    }
    Ok(Analysis {
        redacted: shown.join(" "),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        url.parse::<DatabaseUrl>()
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .to_string()
    }

    #[test]
    fn sqlite_forms() {
        assert_eq!(
            "sqlite://zt-demo.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite("zt-demo.db".into())
        );
        assert_eq!(
            "sqlite:zt.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite("zt.db".into())
        );
        assert_eq!(
            "sqlite:///var/x.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite("/var/x.db".into())
        );
        for bad in [
            "sqlite://",
            "sqlite://:memory:",
            "sqlite://a.db?mode=ro",
            "zt.db",
            "",
            "http://x",
            "mysql://u:pw@h/db",
        ] {
            let error = bad.parse::<DatabaseUrl>().unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{bad}");
        }
        let error = "zt.db".parse::<DatabaseUrl>().unwrap_err().to_string();
        assert!(error.contains("sqlite://PATH"), "{error}");
    }

    #[test]
    fn uri_secrets_are_hidden() {
        assert_eq!(shown("postgresql://u:p%40ss@h/db"), "postgresql://u:***@h/db");
        assert_eq!(shown("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            shown(
                "postgres://app@h:5432/db?sslmode=require&password=hunter2&ssl%6Bey=%2Fk.pem&sslpassword=x&application_name=zt&ssl=true"
            ),
            "postgres://app@h:5432/db?sslmode=require&password=***&ssl%6Bey=***&sslpassword=***&application_name=zt&ssl=true"
        );
        assert_eq!(
            shown("postgres://app:pw@h1:5432,h2:5433/db?target_session_attrs=read-write"),
            "postgres://app:***@h1:5432,h2:5433/db?target_session_attrs=read-write"
        );
        assert_eq!(
            shown("postgres://app:pw@[::1]:5432,h2/db?password=x"),
            "postgres://app:***@[::1]:5432,h2/db?password=***"
        );
        assert_eq!(shown("postgres://app:pw@/db"), "postgres://app:***@/db");
        assert_eq!(shown("postgres:///db?host=/tmp"), "postgres:///db?host=/tmp");
        assert_eq!(shown("postgres://h?password=pw"), "postgres://h?password=***");
    }

    #[test]
    fn ambiguous_uris_are_refused_unseen() {
        for bad in [
            "postgres://u:hunter2@h/db with space",
            "postgres://u:hun@ter2@h/db",
            "postgres://u:hun?ter2@h/db",
            "postgres://u:hunter2#@h/db",
            "postgres://u:hunter2%zz@h/db",
            "postgres://h/db?password=hunter2%0",
            "postgres://h/db?password=hun=ter2",
            "postgres://h/db?hunter2",
            "postgres://u:hunter2@h1,,h2/db",
            "postgres://u:hunter2@h1:x,h2/db",
            "postgres://u:12/hunter2@h/db",
            "postgres://h/db?password=hun&=ter2",
            "postgres://h/db?password=hun&ter2=x",
        ] {
            let error = bad.parse::<DatabaseUrl>().unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{bad}");
            assert!(!error.to_string().contains("hunter2"), "{bad}: {error}");
            assert!(!error.to_string().contains("ter2"), "{bad}: {error}");
        }
    }

    #[test]
    fn conninfo_is_accepted_and_hidden() {
        let url: DatabaseUrl = "host=db port=5432 user=app password='x y' dbname=prod".parse().unwrap();
        assert_eq!(url.backend(), Backend::Postgres);
        assert_eq!(
            url.connection_string(),
            "host=db port=5432 user=app password='x y' dbname=prod"
        );
        assert_eq!(url.to_string(), "host=db port=5432 user=app password=*** dbname=prod");
        assert_eq!(
            shown("host = db  sslpassword=a\\ b sslkey = '/k e y.pem' options='-c x=1'"),
            "host=db sslpassword=*** sslkey=*** options='-c x=1'"
        );
        for bad in [
            "host=db password=two words",
            "host=db password='unterminated",
            "host=db password=x y=z",
            "password",
        ] {
            let error = bad.parse::<DatabaseUrl>().unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{bad}");
            for secret in ["two", "words", "unterminated", "y=z"] {
                assert!(!error.to_string().contains(secret), "{bad}: {error}");
            }
        }
    }

    #[test]
    fn conninfo_parses_as_libpq_does() {
        let error = parse_conninfo("host=h a_b=1").err().unwrap();
        assert!(error.contains("unknown keyword"), "{error}");
        let pairs = parse_conninfo(r"host=h password = 'it\'s' user='\\ x' dbname=a\ b port=").unwrap();
        let read: Vec<(&str, &str)> = pairs.iter().map(|p| (p.keyword, p.value.as_str())).collect();
        assert_eq!(
            read,
            [
                ("host", "h"),
                ("password", "it's"),
                ("user", "\\ x"),
                ("dbname", "a b"),
                ("port", "")
            ]
        );
    }

    #[test]
    fn driver_messages_are_scrubbed() {
        let url: DatabaseUrl = "postgres://u:hunter2@h/db?sslkey=/secret/key.pem".parse().unwrap();
        let message = "could not load private key file \"/secret/key.pem\"; uri \"postgres://u:hunter2@h/db?sslkey=/secret/key.pem\"";
        let scrubbed = url.scrub(message);
        assert!(
            !scrubbed.contains("hunter2") && !scrubbed.contains("/secret/"),
            "{scrubbed}"
        );
        let url: DatabaseUrl = "host=h password='two words'".parse().unwrap();
        assert_eq!(url.scrub("bad: two words"), "bad: ***");
        let unreadable = Secrets::of_postgres("host=h password=two words");
        assert!(!unreadable.scrub("missing \"=\" after \"words\"").contains("words"));
        assert_eq!(unreadable.scrub("connection refused"), "connection refused");
    }
}
