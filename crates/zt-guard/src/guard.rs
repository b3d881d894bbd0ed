//! The guard and its transaction handle.

use std::error::Error as StdError;
use std::fmt;

use serde::Serialize;
use zt_audit::AuditLog;
use zt_db::{AnyConnection, ConnectionVisitor, DbConnection, Pool};
use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, Problem, Sanitizer};
use zt_session::{Requirement, ValidatedSession, Validator};
use zt_types::{Actor, AuditEvent, AuditStatus, ReferenceId, RequestContext, SessionClaims};

/// The error a guarded action's body returns: any error. Its code is picked
/// by the sanitizer, so return a [`CodedError`] where you know the code.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// One sensitive action: what is done, to which kind of resource, and what
/// the session must satisfy. Without a requirement the action is anonymous,
/// such as a newsletter signup, and no session is checked.
#[derive(Debug, Clone)]
pub struct GuardedAction {
    name: &'static str,
    resource: &'static str,
    resource_id: Option<String>,
    requirement: Option<Requirement>,
}

impl GuardedAction {
    /// An action that needs a session satisfying `requirement`.
    pub fn new(name: &'static str, resource: &'static str, requirement: Requirement) -> Self {
        Self {
            name,
            resource,
            resource_id: None,
            requirement: Some(requirement.operation(name)),
        }
    }

    /// An action anyone may attempt; it is audited with an anonymous actor.
    pub fn anonymous(name: &'static str, resource: &'static str) -> Self {
        Self {
            name,
            resource,
            resource_id: None,
            requirement: None,
        }
    }

    /// Names the resource acted on, when it is known before the action runs,
    /// so that even a denied attempt's audit row says what was targeted. The
    /// body may still set it with [`Tx::set_resource_id`].
    #[must_use]
    pub fn on(mut self, resource_id: impl fmt::Display) -> Self {
        self.resource_id = Some(resource_id.to_string());
        self
    }

    /// The action's name, such as `CREATE_PROJECT`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// What the action's body gets: its transaction, the validated session, and
/// room to add what the audit row should say.
pub struct Tx<'a> {
    conn: AnyConnection<'a>,
    session: Option<&'a ValidatedSession>,
    resource_id: Option<String>,
    metadata: Option<serde_json::Value>,
}

impl fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("resource_id", &self.resource_id)
            .finish_non_exhaustive()
    }
}

impl Tx<'_> {
    /// The connection, inside the action's transaction, as the app's own
    /// connection type: `let conn: &mut PgConnection = tx.connection()?;`.
    /// Fails when the guard's pool is of another backend.
    pub fn connection<C: DbConnection>(&mut self) -> Result<&mut C, BoxError> {
        let backend = self.conn.backend();
        self.conn.reborrow().downcast::<C>().ok_or_else(|| {
            format!(
                "this action's connection is {backend}, not {}",
                <C as DbConnection>::BACKEND
            )
            .into()
        })
    }

    /// The connection, inside the action's transaction, of whichever backend
    /// the guard's pool has: for code that runs on both, match on it or
    /// [`visit`](AnyConnection::visit) it.
    pub fn conn(&mut self) -> AnyConnection<'_> {
        self.conn.reborrow()
    }

    /// The validated session, or `None` for an anonymous action.
    pub fn session(&self) -> Option<&ValidatedSession> {
        self.session
    }

    /// Sets the id of the resource acted on, for the audit row.
    pub fn set_resource_id(&mut self, id: impl fmt::Display) {
        self.resource_id = Some(id.to_string());
    }

    /// Sets the audit row's metadata; it is redacted and bounded like any event's.
    pub fn set_metadata<T: Serialize + ?Sized>(&mut self, metadata: &T) {
        self.metadata = serde_json::to_value(metadata).ok();
    }
}

/// Runs sensitive actions the zero-trust way. For each action it:
///
/// 1. revalidates the session against the action's requirement (one query);
///    a denial is audited as `denied` and returned as a problem;
/// 2. runs the body in a transaction (an immediate one on SQLite), inside a
///    savepoint of its own;
/// 3. records the audit event in that same transaction: `success` when the
///    body succeeds; `failed`, with the error's code, when it fails, after
///    rolling the body's changes back to the savepoint;
/// 4. on any error sanitizes it, which logs it in full and reports it to the
///    monitor, and returns the client-safe [`Problem`].
///
/// Each event is logged once, by its owner. A denial is the validator's
/// event (`session denied`), logged inside a `session_check` span (target
/// `zt::guard`) that carries the action and the reference id the client gets;
/// the sanitizer does not log it again. Every other error is the sanitizer's
/// (`request failed`). The monitor counts both and logs neither.
///
/// If the audit event cannot be written, the transaction does not commit:
/// what cannot be audited does not happen.
#[derive(Clone)]
pub struct Guard {
    validator: Validator,
    audit: AuditLog,
    pool: Pool,
    sanitizer: Sanitizer,
    #[cfg(feature = "monitoring")]
    monitor: Option<zt_monitoring::Monitor>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("audit", &self.audit)
            .field("sanitizer", &self.sanitizer)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard that checks sessions with `validator`, audits to `audit`, whose
    /// pool also runs the actions' transactions, and sanitizes with `sanitizer`.
    pub fn new(validator: Validator, audit: AuditLog, sanitizer: Sanitizer) -> Self {
        let sanitizer = sanitizer.classifier(zt_audit::classify).classifier(classify_denial);
        Self {
            validator,
            pool: audit.pool().clone(),
            audit,
            sanitizer,
            #[cfg(feature = "monitoring")]
            monitor: None,
        }
    }

    /// Reports every sanitized error to `monitor` and times each action
    /// under its name.
    #[cfg(feature = "monitoring")]
    #[cfg_attr(docsrs, doc(cfg(feature = "monitoring")))]
    #[must_use]
    pub fn with_monitor(mut self, monitor: zt_monitoring::Monitor) -> Self {
        self.sanitizer = self.sanitizer.clone().hook(monitor.clone());
        self.monitor = Some(monitor);
        self
    }

    /// Runs the actions' transactions on `pool`, the app's own r2d2 pool as it
    /// is, instead of the audit log's. The audit rows go into the same
    /// transactions, so the audit tables must be in that database.
    #[must_use]
    pub fn on_pool(mut self, pool: impl Into<Pool>) -> Self {
        self.pool = pool.into();
        self
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The sanitizer, for errors outside guarded actions.
    pub fn sanitizer(&self) -> &Sanitizer {
        &self.sanitizer
    }

    /// The session validator.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Runs `body` as `action` for the session in `claims`, from the request
    /// in `context`. See [`Guard`] for the steps.
    pub fn run<T>(
        &self,
        action: &GuardedAction,
        claims: Option<&SessionClaims>,
        context: &RequestContext,
        body: impl FnOnce(&mut Tx<'_>) -> Result<T, BoxError>,
    ) -> Result<T, Problem> {
        #[cfg(feature = "monitoring")]
        let timer = self
            .monitor
            .as_ref()
            .map(|monitor| monitor.operation(action.name).start());
        let result = self.run_untimed(action, claims, context, body);
        #[cfg(feature = "monitoring")]
        if let Some(timer) = timer {
            timer.stop();
        }
        result
    }

    fn run_untimed<T>(
        &self,
        action: &GuardedAction,
        claims: Option<&SessionClaims>,
        context: &RequestContext,
        body: impl FnOnce(&mut Tx<'_>) -> Result<T, BoxError>,
    ) -> Result<T, Problem> {
        let session = match &action.requirement {
            Some(requirement) => Some(self.check_session(action, requirement, claims, context)?),
            None => None,
        };
        let actor = session.as_ref().map_or(Actor::Anonymous, ValidatedSession::actor);
        let mut pooled = self.pool.get().map_err(|e| self.sanitizer.sanitize_for(&e, context))?;
        let outcome = pooled.connection().visit(Audited {
            guard: self,
            action,
            actor: &actor,
            context,
            session: session.as_ref(),
            body,
        });
        match outcome {
            Ok(Ok(value)) => Ok(value),
            // The body failed; its failure is audited and committed.
            Ok(Err(error)) => Err(self.sanitizer.sanitize_for(error.as_ref(), context)),
            // Nothing committed: the database failed, or the audit write did.
            Err(error) => Err(self.sanitizer.sanitize_for(error.as_ref(), context)),
        }
    }

    /// Revalidates the session. A denial is logged once, by its owner: the
    /// validator logs it (code, reason, user, request id) inside a span that
    /// carries the reference id the client gets, so the sanitizer only builds
    /// the problem and reports it to the hooks, without logging it again.
    fn check_session(
        &self,
        action: &GuardedAction,
        requirement: &Requirement,
        claims: Option<&SessionClaims>,
        context: &RequestContext,
    ) -> Result<ValidatedSession, Problem> {
        let reference = ReferenceId::new();
        // At ERROR level, so that the span, and with it the reference id, is
        // there whenever the denial's own event is.
        let span = tracing::error_span!(
            target: "zt::guard",
            "session_check",
            action = action.name,
            reference_id = %reference
        );
        let denial = match span.in_scope(|| self.validator.validate_optional(claims, requirement, context)) {
            Ok(session) => return Ok(session),
            Err(denial) => denial,
        };
        let actor = denial
            .user_id()
            .map_or(Actor::Anonymous, |id| Actor::user(id.clone(), None));
        let event = self.event(
            action,
            actor,
            context,
            AuditStatus::Denied,
            action.resource_id.clone(),
            None,
            Some(denial.code()),
        );
        if let Err(error) = event.and_then(|event| self.audit.record(&event).map_err(BoxError::from)) {
            // The denial stands; the lost audit row is another event, which
            // nobody logged yet: the sanitizer logs it under its own reference id.
            let failure = CodedError::new(ErrorCode::AuditWriteFailed)
                .with_message("the audit event of a denial could not be written")
                .with_source(error);
            self.sanitizer.sanitize_for(&failure, context);
        }
        Err(self
            .sanitizer
            .sanitize_logged(denial.code(), &denial, Some(context), reference))
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        action: &GuardedAction,
        actor: Actor,
        context: &RequestContext,
        status: AuditStatus,
        resource_id: Option<String>,
        metadata: Option<serde_json::Value>,
        code: Option<ErrorCode>,
    ) -> Result<AuditEvent, BoxError> {
        let mut builder = AuditEvent::builder(actor, action.name, action.resource)
            .context(context)
            .status(status);
        if let Some(id) = resource_id {
            builder = builder.resource_id(id);
        }
        if let Some(metadata) = metadata {
            builder = builder.metadata(&metadata);
        }
        if let Some(code) = code {
            builder = builder.error_code(code.reason());
        }
        Ok(builder.build()?)
    }
}

/// Maps a session denial onto its code for the sanitizer.
fn classify_denial(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    error.downcast_ref::<zt_session::Denial>().map(zt_session::Denial::code)
}

/// One guarded action's transaction, run on whichever backend the guard's
/// pool has: the body in a savepoint, then the audit row, in one transaction
/// (an immediate one on SQLite).
struct Audited<'g, B> {
    guard: &'g Guard,
    action: &'g GuardedAction,
    actor: &'g Actor,
    context: &'g RequestContext,
    session: Option<&'g ValidatedSession>,
    body: B,
}

impl<T, B> ConnectionVisitor for Audited<'_, B>
where
    B: FnOnce(&mut Tx<'_>) -> Result<T, BoxError>,
{
    /// The outer result is the transaction's: an error means nothing
    /// committed. The inner one is the body's, audited and committed.
    type Output = Result<Result<T, BoxError>, BoxError>;

    fn visit<C: DbConnection>(self, conn: &mut C) -> Self::Output {
        let Self {
            guard,
            action,
            actor,
            context,
            session,
            body,
        } = self;
        conn.write_transaction(|outer| {
            let mut resource_id = action.resource_id.clone();
            let mut metadata = None;
            // The body's own savepoint: its changes roll back alone on error,
            // and the outer transaction, with the audit row, still commits.
            let result = diesel::Connection::transaction(outer, |inner: &mut C| {
                let mut tx = Tx {
                    conn: inner.as_any(),
                    session,
                    resource_id: None,
                    metadata: None,
                };
                let result = body(&mut tx);
                if let Some(id) = tx.resource_id.take() {
                    resource_id = Some(id);
                }
                metadata = tx.metadata.take();
                result
            });
            let (status, code) = match &result {
                Ok(_) => (AuditStatus::Success, None),
                Err(error) => (AuditStatus::Failed, Some(guard.sanitizer.classify(error.as_ref()))),
            };
            let event = guard.event(action, actor.clone(), context, status, resource_id, metadata, code)?;
            guard.audit.record_in(outer, &event)?;
            Ok(result)
        })
    }
}
