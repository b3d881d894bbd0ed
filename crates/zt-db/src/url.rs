//! Database URLs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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
///   `postgresql://`): passed to libpq as given.
///
/// `Display` hides the password, so a URL can go into an error message.
///
/// ```
/// use zt_db::{Backend, DatabaseUrl};
/// let url: DatabaseUrl = "postgres://app:s3cret@db:5432/prod".parse()?;
/// assert_eq!(url.backend(), Backend::Postgres);
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/prod");
/// assert!("mysql://x".parse::<DatabaseUrl>().is_err());
/// # Ok::<(), zt_db::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
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
}

impl FromStr for DatabaseUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self, Error> {
        let url = url.trim();
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidUrl,
                format!("invalid database URL {}: {why}", redact(url)),
            )
        };
        if let Some(rest) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        {
            if rest.is_empty() || rest.starts_with('/') && rest.len() == 1 {
                return Err(invalid("it names no host or database"));
            }
            if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid("it contains whitespace"));
            }
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("it names no file; write sqlite://path/to/file.db"));
            }
            if path == ":memory:" || path.starts_with("file::memory:") {
                return Err(invalid(
                    "in-memory SQLite gives every pooled connection its own database; use a file",
                ));
            }
            if path.contains('?') {
                return Err(invalid(
                    "query parameters are not supported for SQLite; zt sets its own pragmas",
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(invalid("expected sqlite://PATH or postgres://USER@HOST/DB"))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..authority_start],
                &authority[..colon],
                &url[authority_start + at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            let error = bad.parse::<DatabaseUrl>().unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{bad}");
        }
    }

    #[test]
    fn postgres_password_is_hidden() {
        let url: DatabaseUrl = "postgresql://u:p%40ss@h/db".parse().unwrap();
        assert_eq!(url.to_string(), "postgresql://u:***@h/db");
        let error = "postgres://u:hunter2@h/db with space"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
