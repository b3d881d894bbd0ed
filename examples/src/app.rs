//! The example app: the server actions of the Next.js module zt grew from,
//! each run through a [`Guard`], on SQLite or PostgreSQL.

use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;
use zt_audit::{AuditLog, ChainKey};
use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_error_codes::{Category, ErrorCode};
use zt_errors::{CodedError, Problem, Sanitizer};
use zt_guard::{AnyConnection, BoxError, Guard, GuardedAction, Tx};
use zt_monitoring::{AlertRule, Condition, Monitor, Selector, SinkOptions, Timing, TracingSink};
use zt_session::{Requirement, TokenVerifier, UserStore, Validator};
use zt_types::{Email, RequestContext, Role, SessionClaims, UserId};

use crate::idp::IdentityProvider;
use crate::schema::{newsletter_subscribers, projects};

static POSTGRES_MIGRATIONS: zt_db::EmbeddedMigrations = zt_db::embed_migrations!("migrations/postgres");
static SQLITE_MIGRATIONS: zt_db::EmbeddedMigrations = zt_db::embed_migrations!("migrations/sqlite");
/// The example app's own migrations, beside zt's.
pub static APP_MIGRATIONS: zt_db::MigrationSet = zt_db::MigrationSet {
    name: "example app",
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
    runtime_privileges: &[
        zt_db::RuntimePrivilege {
            kind: "TABLE",
            object: "projects",
            privileges: "SELECT, INSERT, UPDATE, DELETE",
        },
        zt_db::RuntimePrivilege {
            kind: "SEQUENCE",
            object: "projects_id_seq",
            privileges: "USAGE",
        },
        zt_db::RuntimePrivilege {
            kind: "TABLE",
            object: "newsletter_subscribers",
            privileges: "SELECT, INSERT",
        },
    ],
};

/// Runs the same diesel code on whichever backend the action's connection
/// is; this app is built with both. An app on one backend writes
/// `let conn: &mut PgConnection = tx.connection()?;` instead.
macro_rules! on_conn {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx.conn() {
            AnyConnection::Sqlite($conn) => $body,
            AnyConnection::Postgres($conn) => $body,
            other => return Err(format!("this app has no {} support", other.backend()).into()),
        }
    };
}

/// A project, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable)]
pub struct Project {
    /// Its id.
    pub id: i64,
    /// Who created it.
    pub owner_id: String,
    /// Its name.
    pub name: String,
}

/// The example app: its database, users, audit log, guard and monitor.
#[derive(Debug)]
pub struct App {
    /// Runs every action.
    pub guard: Guard,
    /// The reference user store.
    pub users: UserStore,
    /// The audit log.
    pub audit: AuditLog,
    /// Error and latency monitoring.
    pub monitor: Monitor,
    /// The stand-in identity provider.
    pub idp: IdentityProvider,
    /// Verifies the provider's tokens, with its key set fetched over HTTP.
    pub tokens: TokenVerifier,
}

/// Creating and renaming: any signed-in user whose login is at most an hour old.
fn member() -> Requirement {
    Requirement::moderate()
}

/// Destructive: a login at most 10 minutes old.
fn destructive() -> Requirement {
    Requirement::strict()
}

/// Admin actions: the admin role, a login at most an hour old.
fn admin() -> Requirement {
    Requirement::moderate().min_role(Role::admin())
}

impl App {
    /// Connects to `url`, applies every migration, and wires the crates
    /// together.
    pub fn open(url: &str, key: &ChainKey) -> Result<Self, BoxError> {
        let url: DatabaseUrl = url.parse()?;
        let pool = Pool::connect_with(&url, &PoolConfig::new().max_size(8))?;
        let app = Self::with_pool(pool, key)?;
        app.audit.migrate()?;
        app.users.migrate()?;
        app.audit.pool().run_migrations(&APP_MIGRATIONS)?;
        Ok(app)
    }

    /// Wires the crates together on `pool` without touching the database,
    /// so that the app starts even while its database is down. The stand-in
    /// identity provider starts with it, on a free port of 127.0.0.1.
    pub fn with_pool(pool: Pool, key: &ChainKey) -> Result<Self, BoxError> {
        let audit = AuditLog::new(pool.clone(), key);
        let users = UserStore::new(pool);
        // Reports the sanitizer logged already are not logged again.
        let monitor = Monitor::builder()
            .tracing_sink(TracingSink::new(), SinkOptions::default())
            .rule(
                AlertRule::new(
                    "database-unavailable",
                    Selector::Category(Category::Database),
                    Condition::threshold(1, Duration::from_secs(60)),
                )
                .with_timing(Timing::new().with_group_wait(Duration::ZERO)),
            )
            .rule(AlertRule::new(
                "session-denials",
                Selector::Category(Category::Session),
                Condition::threshold(20, Duration::from_secs(60)),
            ))
            .evaluate_every(Duration::from_millis(100))
            .build()?;
        let guard =
            Guard::new(Validator::new(users.clone()), audit.clone(), Sanitizer::new()).with_monitor(monitor.clone());
        let idp = IdentityProvider::start(users.clone())?;
        let tokens = idp.verifier()?;
        Ok(Self {
            guard,
            users,
            audit,
            monitor,
            idp,
            tokens,
        })
    }

    /// `createProject`: any member creates a project.
    pub fn create_project(
        &self,
        claims: Option<&SessionClaims>,
        request: &RequestContext,
        name: &str,
    ) -> Result<Project, Problem> {
        let action = GuardedAction::new("CREATE_PROJECT", "projects", member());
        self.guard.run(&action, claims, request, |tx| {
            let name = project_name(name)?;
            let owner = owner(tx)?;
            let project: Project = on_conn!(tx, |conn| diesel::insert_into(projects::table)
                .values((projects::owner_id.eq(&owner), projects::name.eq(&name)))
                .returning((projects::id, projects::owner_id, projects::name))
                .get_result(conn))?;
            tx.set_resource_id(project.id);
            tx.set_metadata(&serde_json::json!({ "name": project.name }));
            Ok(project)
        })
    }

    /// Renames a project: its owner or an admin.
    pub fn rename_project(
        &self,
        claims: Option<&SessionClaims>,
        request: &RequestContext,
        id: i64,
        name: &str,
    ) -> Result<Project, Problem> {
        let action = GuardedAction::new("UPDATE_PROJECT", "projects", member()).on(id);
        self.guard.run(&action, claims, request, |tx| {
            let name = project_name(name)?;
            let project = owned_project(tx, id)?;
            let renamed: Project = on_conn!(tx, |conn| diesel::update(projects::table.find(id))
                .set(projects::name.eq(&name))
                .returning((projects::id, projects::owner_id, projects::name))
                .get_result(conn))?;
            tx.set_metadata(&serde_json::json!({ "from": project.name, "to": renamed.name }));
            Ok(renamed)
        })
    }

    /// Deletes a project: its owner or an admin, with a recent login.
    pub fn delete_project(
        &self,
        claims: Option<&SessionClaims>,
        request: &RequestContext,
        id: i64,
    ) -> Result<(), Problem> {
        let action = GuardedAction::new("DELETE_PROJECT", "projects", destructive()).on(id);
        self.guard.run(&action, claims, request, |tx| {
            let project = owned_project(tx, id)?;
            on_conn!(tx, |conn| diesel::delete(projects::table.find(id)).execute(conn))?;
            tx.set_metadata(&serde_json::json!({ "name": project.name }));
            Ok(())
        })
    }

    /// `setUserRole`: an admin changes a user's role; the user's sessions end.
    pub fn set_user_role(
        &self,
        claims: Option<&SessionClaims>,
        request: &RequestContext,
        user: &UserId,
        role: &Role,
    ) -> Result<(), Problem> {
        let action = GuardedAction::new("UPDATE_ROLE", "users", admin()).on(user);
        self.guard.run(&action, claims, request, |tx| {
            let change = self
                .users
                .change_role_in(&mut tx.conn(), user, role)
                .map_err(not_found_or)?;
            tx.set_metadata(&change.audit_metadata());
            Ok(())
        })
    }

    /// An admin disables a user; the user's sessions fail their next check.
    pub fn disable_user(
        &self,
        claims: Option<&SessionClaims>,
        request: &RequestContext,
        user: &UserId,
    ) -> Result<(), Problem> {
        let action = GuardedAction::new("DISABLE_USER", "users", admin()).on(user);
        self.guard.run(&action, claims, request, |tx| {
            let change = self.users.disable_user_in(&mut tx.conn(), user).map_err(not_found_or)?;
            tx.set_metadata(&change.audit_metadata());
            Ok(())
        })
    }

    /// An admin revokes every session of a user.
    pub fn revoke_sessions(
        &self,
        claims: Option<&SessionClaims>,
        request: &RequestContext,
        user: &UserId,
    ) -> Result<(), Problem> {
        let action = GuardedAction::new("REVOKE_ALL_SESSIONS", "users", admin()).on(user);
        self.guard.run(&action, claims, request, |tx| {
            let change = self
                .users
                .revoke_all_sessions_in(&mut tx.conn(), user)
                .map_err(not_found_or)?;
            tx.set_metadata(&change.audit_metadata());
            Ok(())
        })
    }

    /// The newsletter signup: anyone, with a valid email, once.
    pub fn subscribe(&self, request: &RequestContext, email: &str) -> Result<(), Problem> {
        let action = GuardedAction::anonymous("NEWSLETTER_SIGNUP", "newsletter_subscribers");
        self.guard.run(&action, None, request, |tx| {
            let email = Email::parse_address(email.trim().to_lowercase()).map_err(|error| {
                CodedError::validation()
                    .with_safe_field("email", "Enter a valid email address.")
                    .with_source(error)
            })?;
            tx.set_resource_id(email.as_str());
            on_conn!(tx, |conn| diesel::insert_into(newsletter_subscribers::table)
                .values(newsletter_subscribers::email.eq(email.as_str()))
                .execute(conn))?;
            Ok(())
        })
    }
}

/// A project name: 1 to 100 characters, no control characters.
fn project_name(name: &str) -> Result<String, CodedError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(CodedError::validation()
            .with_safe_field("name", "Give the project a name of 1 to 100 characters.")
            .with_message(format!("rejected project name of {} bytes", name.len())));
    }
    Ok(name.to_owned())
}

fn owner(tx: &Tx<'_>) -> Result<String, CodedError> {
    tx.session()
        .map(|session| session.user_id().to_string())
        .ok_or_else(|| CodedError::new(ErrorCode::SessionMissing))
}

/// The project, if the session's user owns it or is an admin.
fn owned_project(tx: &mut Tx<'_>, id: i64) -> Result<Project, BoxError> {
    let project: Project = on_conn!(tx, |conn| projects::table
        .find(id)
        .select((projects::id, projects::owner_id, projects::name))
        .first(conn))?;
    let session = tx.session().ok_or_else(|| CodedError::new(ErrorCode::SessionMissing))?;
    if project.owner_id != session.user_id().as_str() && session.role() != &Role::admin() {
        return Err(CodedError::new(ErrorCode::AuthInsufficientRole)
            .with_message(format!("user {} does not own project {id}", session.user_id()))
            .into());
    }
    Ok(project)
}

/// Maps the user store's "no such user" onto not found.
fn not_found_or(error: zt_session::Error) -> BoxError {
    if error.kind() == zt_session::ErrorKind::NotFound {
        CodedError::new(ErrorCode::ResourceNotFound).with_source(error).into()
    } else {
        error.into()
    }
}
