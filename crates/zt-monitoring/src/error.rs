//! The crate's error type: a struct with a kind, in the style of ripgrep.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, broadly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A rule, rule file or builder setting is invalid.
    Config,
    /// A file could not be read.
    Io,
    /// A sink could not deliver a report or a notification.
    Delivery,
    /// A background thread could not be started.
    Spawn,
    /// An `https` URL or DSN was given to a crate built without TLS: enable
    /// the `rustls` (default) or `native-tls` feature.
    TlsUnavailable,
}

/// An error from building a monitor, loading rules or delivering to a sink.
///
/// Messages are lowercase and name the rule, field or sink concerned. The
/// underlying cause, if any, is not repeated in the message: it is the
/// error's [`source`](StdError::source), for a reporter to print the chain.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A delivery failure caused by `source`, for custom [`crate::Sink`]s.
    pub fn delivery(message: impl Into<String>, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self::new(ErrorKind::Delivery, message).with_source(source)
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Displays an error and its sources as `outer: inner: innermost`, for logs
/// that print one line per error.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut link = self.0.source();
        while let Some(current) = link {
            write!(f, ": {current}")?;
            link = current.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_does_not_repeat_the_source() {
        let error = Error::delivery(
            "webhook \"ops\" failed after 3 attempt(s)",
            std::io::Error::other("503"),
        );
        assert_eq!(error.to_string(), "webhook \"ops\" failed after 3 attempt(s)");
        assert_eq!(error.source().map(ToString::to_string).as_deref(), Some("503"));
        assert_eq!(
            Chain(&error).to_string(),
            "webhook \"ops\" failed after 3 attempt(s): 503"
        );
        let plain = Error::new(ErrorKind::Config, "rule \"x\" is defined twice");
        assert!(plain.source().is_none());
        assert_eq!(Chain(&plain).to_string(), "rule \"x\" is defined twice");
    }
}
