//! The sanitizer: internal error in, client-safe problem out, everything
//! logged.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use zt_error_codes::ErrorCode;
use zt_types::{Neutralized, ReferenceId, RequestContext, Severity};

use crate::classify::{Classifier, classify, safe_fields};
use crate::problem::Problem;

/// What the sanitizer hands to an [`ErrorHook`] for each error: everything the
/// server may know, including the internal chain.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ErrorReport<'a> {
    /// The code.
    pub code: ErrorCode,
    /// The reference id the client got.
    pub reference: ReferenceId,
    /// The code's severity.
    pub severity: Severity,
    /// The internal error, with its source chain. Never for clients.
    pub error: &'a (dyn StdError + 'static),
    /// The request, when known.
    pub context: Option<&'a RequestContext>,
}

impl ErrorReport<'_> {
    /// The chain as lines, outermost first, each neutralized for text logs.
    pub fn chain(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut link = Some(self.error);
        while let Some(current) = link {
            lines.push(Neutralized(&current.to_string()).to_string());
            link = current.source();
        }
        lines
    }
}

/// Receives every report, such as a monitor that forwards errors to Sentry.
/// It runs on the caller's thread, so it must not block.
pub trait ErrorHook: Send + Sync {
    /// Called once per sanitized error, after it was logged: by the sanitizer,
    /// or by its owner for [`Sanitizer::sanitize_logged`]. A hook that logs
    /// would log it twice; it should count, forward or add fields instead.
    fn on_error(&self, report: &ErrorReport<'_>);
}

impl<F> ErrorHook for F
where
    F: Fn(&ErrorReport<'_>) + Send + Sync,
{
    fn on_error(&self, report: &ErrorReport<'_>) {
        self(report);
    }
}

/// Turns internal errors into client-safe [`Problem`]s.
///
/// For each error it:
/// 1. picks the code: the first link of the chain that a classifier
///    recognizes ([`crate::CodedError`], diesel and r2d2 errors built in);
/// 2. creates a reference id (a UUIDv7);
/// 3. logs the code, reference id, severity, request and the full chain
///    through `tracing` (target `zt::errors`, message `request failed`), at
///    the level that matches the severity, with CR, LF and control characters
///    neutralized; an error its owner already logged, such as a session
///    denial the validator logged, goes through
///    [`Sanitizer::sanitize_logged`] and is not logged again;
/// 4. calls the hooks;
/// 5. returns the problem, which holds nothing from the chain except the
///    field messages that the caller marked safe.
///
/// Cloning is cheap; share one sanitizer across threads.
#[derive(Clone, Default)]
pub struct Sanitizer {
    expose_code: bool,
    type_base: Option<Arc<str>>,
    classifiers: Arc<[Classifier]>,
    hooks: Arc<[Arc<dyn ErrorHook>]>,
}

impl fmt::Debug for Sanitizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sanitizer")
            .field("expose_code", &self.expose_code)
            .field("type_base", &self.type_base)
            .field("classifiers", &self.classifiers.len())
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl Sanitizer {
    /// A sanitizer with the defaults: codes are logged, not shown; `type` is
    /// `about:blank`; the built-in classifiers; no hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows the code in the problem's `code` member. Default: off, by the
    /// rule zt started from: "log error codes, don't expose them". Codes reveal which
    /// check failed, such as a revoked session versus a deleted account.
    #[must_use]
    pub fn expose_code(mut self, expose: bool) -> Self {
        self.expose_code = expose;
        self
    }

    /// Sets a base URI for the problem `type`, which becomes the base followed
    /// by the category. Default: `about:blank`.
    #[must_use]
    pub fn problem_type_base(mut self, base: &str) -> Self {
        self.type_base = Some(Arc::from(base));
        self
    }

    /// Adds a classifier, asked before the built-in ones at each link.
    #[must_use]
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        let mut all = self.classifiers.to_vec();
        all.push(classifier);
        self.classifiers = all.into();
        self
    }

    /// Adds a hook that receives every report.
    #[must_use]
    pub fn hook(mut self, hook: impl ErrorHook + 'static) -> Self {
        let mut all = self.hooks.to_vec();
        all.push(Arc::new(hook));
        self.hooks = all.into();
        self
    }

    /// The code the sanitizer would pick for `error`.
    pub fn classify(&self, error: &(dyn StdError + 'static)) -> ErrorCode {
        classify(error, &self.classifiers)
    }

    /// Sanitizes `error`, picking its code from the chain.
    pub fn sanitize(&self, error: &(dyn StdError + 'static)) -> Problem {
        self.report(self.classify(error), error, None)
    }

    /// Sanitizes `error` and logs the request it belongs to.
    pub fn sanitize_for(&self, error: &(dyn StdError + 'static), context: &RequestContext) -> Problem {
        self.report(self.classify(error), error, Some(context))
    }

    /// Sanitizes `error` under a code the caller chose.
    pub fn sanitize_as(
        &self,
        code: ErrorCode,
        error: &(dyn StdError + 'static),
        context: Option<&RequestContext>,
    ) -> Problem {
        self.report(code, error, context)
    }

    /// Turns `error`, which its owner already logged under `reference`, into
    /// a problem carrying that reference id: the hooks are called, but
    /// nothing is logged again. Each event is logged once, by its owner.
    ///
    /// zt-guard passes session denials here: the validator logs each denial
    /// with its code and reason, inside a span that carries the reference id
    /// the guard chose, so the one log line holds the code, the reference id
    /// and the request id.
    ///
    /// ```
    /// use zt_error_codes::ErrorCode;
    /// use zt_errors::{CodedError, Sanitizer};
    /// use zt_types::ReferenceId;
    ///
    /// let reference = ReferenceId::new();
    /// let error = CodedError::new(ErrorCode::SessionRevoked);
    /// // The owner logs the event, with the reference id, ...
    /// tracing::warn!(reference_id = %reference, code = %error.code(), "session denied");
    /// // ... and the sanitizer only builds the problem.
    /// let problem = Sanitizer::new().sanitize_logged(error.code(), &error, None, reference);
    /// assert_eq!(problem.reference(), reference);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sanitize_logged(
        &self,
        code: ErrorCode,
        error: &(dyn StdError + 'static),
        context: Option<&RequestContext>,
        reference: ReferenceId,
    ) -> Problem {
        self.finish(code, reference, error, context)
    }

    fn report(&self, code: ErrorCode, error: &(dyn StdError + 'static), context: Option<&RequestContext>) -> Problem {
        let reference = ReferenceId::new();
        let info = code.info();
        let chain = Chain(error);
        let request_id = context
            .and_then(RequestContext::request_id)
            .map(zt_types::RequestId::as_str);
        let client_ip = context.and_then(RequestContext::client_ip).map(tracing::field::display);
        macro_rules! log {
            ($macro:ident) => {
                tracing::$macro!(
                    target: "zt::errors",
                    reference_id = %reference,
                    code = info.reason,
                    category = info.category.as_str(),
                    severity = info.severity.as_str(),
                    status = info.http_status,
                    request_id,
                    client_ip,
                    error = %chain,
                    "request failed"
                )
            };
        }
        match info.severity {
            Severity::Info => log!(info),
            Severity::Warning => log!(warn),
            Severity::Error | Severity::Critical => log!(error),
        }
        self.finish(code, reference, error, context)
    }

    /// Calls the hooks and builds the problem, for an error already logged.
    fn finish(
        &self,
        code: ErrorCode,
        reference: ReferenceId,
        error: &(dyn StdError + 'static),
        context: Option<&RequestContext>,
    ) -> Problem {
        if !self.hooks.is_empty() {
            let report = ErrorReport {
                code,
                reference,
                severity: code.severity(),
                error,
                context,
            };
            for hook in self.hooks.iter() {
                hook.on_error(&report);
            }
        }
        Problem::new(
            code,
            reference,
            safe_fields(error),
            self.expose_code,
            self.type_base.clone(),
        )
    }
}

/// Displays an error chain as `outer: inner: innermost`, neutralized. It is
/// formatted only if a subscriber records the event.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut link = Some(self.0);
        let mut first = true;
        while let Some(current) = link {
            if !first {
                f.write_str(": ")?;
            }
            first = false;
            write!(f, "{}", Neutralized(&current.to_string()))?;
            link = current.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::CodedError;

    /// Counts the events it sees.
    #[derive(Clone, Default)]
    struct Count(Arc<Mutex<usize>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        }
    }

    #[test]
    fn an_error_its_owner_logged_is_not_logged_again_but_reaches_the_hooks() {
        let events = Count::default();
        let hooked = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&hooked);
        let sanitizer = Sanitizer::new().hook(move |report: &ErrorReport<'_>| {
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((report.code, report.reference));
        });
        let subscriber = tracing_subscriber::registry().with(events.clone());
        let reference = ReferenceId::new();
        let error = CodedError::new(ErrorCode::SessionRevoked);
        let (logged, fresh) = tracing::subscriber::with_default(subscriber, || {
            let logged = sanitizer.sanitize_logged(ErrorCode::SessionRevoked, &error, None, reference);
            let count = *events.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            assert_eq!(count, 0, "sanitize_logged logs nothing");
            (logged, sanitizer.sanitize(&error))
        });
        assert_eq!(logged.reference(), reference);
        assert_eq!(*events.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner), 1);
        let hooked = hooked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(
            *hooked,
            [
                (ErrorCode::SessionRevoked, reference),
                (ErrorCode::SessionRevoked, fresh.reference())
            ]
        );
    }
}
