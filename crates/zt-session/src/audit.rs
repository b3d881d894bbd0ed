//! Denials and admin operations as `zt_types::AuditEvent`s. This crate
//! builds the events; where they go is the app's choice, so zt-session does
//! not depend on zt-audit.

use serde_json::{Map, Value, json};
use zt_types::{Actor, AuditEvent, AuditStatus, FieldError, RequestContext};

use crate::denial::{Denial, DenialReason, Remedy};
use crate::directory::{AdminChange, AdminOperation};

/// The audit action of a denied session check.
pub const SESSION_DENIED: &str = "SESSION_DENIED";

/// Receives the audit events a [`crate::Validator`] emits for its denials.
///
/// It runs on the request thread, so it should hand the event off rather
/// than write it: zt-audit's background pipeline is the usual target, and a
/// closure that submits to it is enough:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use zt_session::AuditSink;
/// use zt_types::AuditEvent;
///
/// let seen: Arc<Mutex<Vec<AuditEvent>>> = Arc::default();
/// let sink = { let seen = Arc::clone(&seen); move |event: AuditEvent| seen.lock().unwrap().push(event) };
/// # fn takes(_: impl AuditSink) {}
/// takes(sink);
/// ```
pub trait AuditSink: Send + Sync {
    /// Takes one event.
    fn record(&self, event: AuditEvent);
}

impl<F> AuditSink for F
where
    F: Fn(AuditEvent) + Send + Sync,
{
    fn record(&self, event: AuditEvent) {
        self(event);
    }
}

impl Denial {
    /// This denial as an audit event: action [`SESSION_DENIED`], resource
    /// `sessions`, the session's hash as the resource id, status `denied`,
    /// the code as the error code, and the reason, operation and remedy as
    /// metadata. The actor is the session's user, or anonymous without claims.
    pub fn audit_event(&self, context: &RequestContext) -> Result<AuditEvent, FieldError> {
        let actor = match self.user_id() {
            Some(id) => Actor::user(id.clone(), None),
            None => Actor::Anonymous,
        };
        let mut metadata = Map::new();
        metadata.insert("reason".into(), json!(self.reason().name()));
        metadata.insert("detail".into(), json!(self.reason().to_string()));
        if let Some(operation) = self.operation() {
            metadata.insert("operation".into(), json!(operation));
        }
        let remedy = match self.remedy() {
            Remedy::SignIn => "sign_in",
            Remedy::StepUp(_) => "step_up",
            Remedy::RetryLater => "retry_later",
            _ => "none",
        };
        metadata.insert("remedy".into(), json!(remedy));
        if let DenialReason::RoleChanged { at_issue, current } = self.reason() {
            metadata.insert("role_at_issue".into(), json!(at_issue.as_str()));
            metadata.insert("role".into(), json!(current.as_str()));
        }
        if let Some(error) = self.store_error() {
            metadata.insert("store_error".into(), json!(error.to_string()));
        }
        let mut builder = AuditEvent::builder(actor, SESSION_DENIED, "sessions")
            .metadata(&Value::Object(metadata))
            .context(context)
            .status(AuditStatus::Denied)
            .error_code(self.code().reason())
            .created_at(self.at());
        if let Some(session) = self.session_hash() {
            builder = builder.resource_id(session);
        }
        builder.build()
    }
}

impl AdminChange {
    /// The audit metadata of this operation: the new session version,
    /// whether anything changed, and the roles or session hash.
    pub fn audit_metadata(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("session_version".into(), json!(self.session_version));
        metadata.insert("changed".into(), json!(self.changed));
        match &self.operation {
            AdminOperation::CreateUser { role } => {
                metadata.insert("role".into(), json!(role.as_str()));
            }
            AdminOperation::ChangeRole { from, to } => {
                metadata.insert("from".into(), json!(from.as_str()));
                metadata.insert("to".into(), json!(to.as_str()));
            }
            AdminOperation::RevokeSession { session } => {
                metadata.insert("session_hash".into(), json!(session.to_string()));
            }
            _ => {}
        }
        Value::Object(metadata)
    }

    /// This admin operation as an audit event by `actor`: the operation's
    /// action (such as `UPDATE_ROLE`), resource `users` with the user's id,
    /// status `success`, and [`AdminChange::audit_metadata`].
    pub fn audit_event(&self, actor: Actor, context: &RequestContext) -> Result<AuditEvent, FieldError> {
        AuditEvent::builder(actor, self.operation.action(), "users")
            .resource_id(&self.user_id)
            .metadata(&self.audit_metadata())
            .context(context)
            .status(AuditStatus::Success)
            .created_at(self.at)
            .build()
    }
}
