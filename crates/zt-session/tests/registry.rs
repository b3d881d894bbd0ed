//! The session registry on real SQLite files and a real PostgreSQL server:
//! listing and signing out devices, inactivity timeouts and the absolute
//! lifetime on a manual clock, last-seen writes at most once per interval,
//! client changes under each binding policy, unknown sessions, an app's own
//! directory, the caller's transaction, and failing closed without the table.
// Every test here needs a database: built with `store` but no backend, the
// suite is empty. `backend_tests!` runs each backend this crate was built with.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use diesel::Connection;
use support::{Fixture, capture_logs, setup};
use zt_db::AnyConnection;
use zt_error_codes::ErrorCode;
use zt_session::{
    BindingMismatch, BindingPolicy, DenialReason, RegistryPolicy, Remedy, Requirement, Result, SessionRecord,
    SessionRegistry, SessionState, StepUp, UserDirectory, UserState, Validator,
};
use zt_testkit::TestDatabase;
use zt_types::{Clock, RequestContext, Role, SessionClaims, SessionHash, SessionId, Timestamp, UserAgent, UserId};

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn laptop() -> RequestContext {
    RequestContext::new()
        .with_ip("203.0.113.7".parse().unwrap())
        .with_user_agent("Firefox/140 (X11)")
}

fn phone() -> RequestContext {
    RequestContext::new()
        .with_ip("198.51.100.20".parse().unwrap())
        .with_user_agent("Safari/19 (iPhone)")
}

/// A migrated registry on the fixture's store, and a validator using it.
fn registry(f: &Fixture, policy: RegistryPolicy) -> (SessionRegistry, Validator) {
    let registry = f.store.registry().with_policy(policy);
    assert_eq!(registry.migrate().unwrap(), ["20261130000003"]);
    assert!(registry.migrate().unwrap().is_empty());
    let validator = f.validator().with_registry(registry.clone());
    (registry, validator)
}

/// Signs `user` in on `device` and registers the session.
fn sign_in(f: &Fixture, registry: &SessionRegistry, user: &UserId, id: &str, device: &RequestContext) -> SessionClaims {
    let claims = f.sign_in(user, id);
    let record = registry.register(&claims, device).unwrap();
    assert_eq!(record.created_at, f.clock.now());
    claims
}

fn record(registry: &SessionRegistry, claims: &SessionClaims) -> SessionRecord {
    registry.session(&claims.session_hash()).unwrap().unwrap()
}

fn devices_are_listed_and_signed_out(db: &TestDatabase) {
    let f = setup(db);
    let (registry, validator) = registry(&f, RegistryPolicy::aal2());
    let (alice, bob) = (f.user("alice", Role::user()), f.user("bob", Role::user()));
    let on_laptop = sign_in(&f, &registry, &alice, "sess_laptop", &laptop());
    f.clock.advance(minutes(1));
    let on_phone = sign_in(&f, &registry, &alice, "sess_phone", &phone());
    f.clock.advance(minutes(1));
    let on_tablet = sign_in(&f, &registry, &alice, "sess_tablet", &phone());
    let bobs = sign_in(&f, &registry, &bob, "sess_bob", &laptop());
    // Registering again keeps the row.
    f.clock.advance(minutes(1));
    assert_eq!(
        registry.register(&on_laptop, &phone()).unwrap(),
        record(&registry, &on_laptop)
    );

    let listed = registry.list(&alice).unwrap();
    let hashes: Vec<SessionHash> = listed.iter().map(|r| r.session_hash).collect();
    assert_eq!(
        hashes,
        [
            on_tablet.session_hash(),
            on_phone.session_hash(),
            on_laptop.session_hash()
        ],
        "most recently active first"
    );
    let first = &listed[2];
    assert_eq!(first.user_id, alice);
    assert_eq!(first.created_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(first.created_user_agent, Some(UserAgent::new("Firefox/140 (X11)")));
    assert_eq!(
        (first.last_ip, first.client_changes, first.revoked_at),
        (first.created_ip, 0, None)
    );

    // "Sign out this device", from the phone.
    assert!(registry.sign_out(&alice, &on_phone.session_hash()).unwrap());
    assert!(
        !registry.sign_out(&alice, &on_phone.session_hash()).unwrap(),
        "already signed out"
    );
    assert!(
        !registry.sign_out(&bob, &on_laptop.session_hash()).unwrap(),
        "not bob's"
    );
    let denial = validator
        .validate(&on_phone, &Requirement::new(), &phone())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::SignedOut { at: f.clock.now() });
    assert_eq!(
        (denial.code(), denial.remedy()),
        (ErrorCode::SessionRevoked, Remedy::SignIn)
    );
    assert_eq!(registry.list(&alice).unwrap().len(), 2);

    // "Sign out all other devices", from the laptop.
    assert_eq!(registry.sign_out_others(&alice, &on_laptop.session_hash()).unwrap(), 1);
    validator.validate(&on_laptop, &Requirement::new(), &laptop()).unwrap();
    assert_eq!(
        validator
            .validate(&on_tablet, &Requirement::new(), &phone())
            .unwrap_err()
            .code(),
        ErrorCode::SessionRevoked
    );
    let listed = registry.list(&alice).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_hash, on_laptop.session_hash());
    validator.validate(&bobs, &Requirement::new(), &laptop()).unwrap();

    assert_eq!(registry.sign_out_everywhere(&alice).unwrap(), 1);
    assert!(registry.list(&alice).unwrap().is_empty());
    assert_eq!(registry.list(&bob).unwrap().len(), 1);
    assert!(
        record(&registry, &on_laptop).revoked_at.is_some(),
        "the row stays, signed out"
    );

    // Pruning deletes rows by last activity.
    f.clock.advance(minutes(10));
    assert_eq!(registry.prune(f.clock.now().saturating_sub(minutes(5))).unwrap(), 4);
    assert_eq!(registry.session(&on_laptop.session_hash()).unwrap(), None);
}

fn idle_sessions_expire(db: &TestDatabase) {
    let f = setup(db);
    let (registry, validator) = registry(&f, RegistryPolicy::aal3());
    let alice = f.user("alice", Role::user());
    let claims = sign_in(&f, &registry, &alice, "sess_a", &laptop());
    // Active every 14 minutes: never idle for 15.
    for _ in 0..4 {
        f.clock.advance(minutes(14));
        validator.validate(&claims, &Requirement::new(), &laptop()).unwrap();
    }
    assert_eq!(record(&registry, &claims).last_seen_at, f.clock.now());
    f.clock.advance(minutes(15) + Duration::from_secs(1));
    let denial = validator.validate(&claims, &Requirement::new(), &laptop()).unwrap_err();
    let last_seen = f.clock.now().saturating_sub(minutes(15) + Duration::from_secs(1));
    assert_eq!(
        denial.reason(),
        &DenialReason::Idle {
            last_seen,
            timeout: minutes(15)
        }
    );
    assert_eq!(
        (denial.code(), denial.remedy()),
        (ErrorCode::SessionExpired, Remedy::SignIn)
    );
    // A denied check keeps nothing alive, and the session is no longer listed.
    assert_eq!(record(&registry, &claims).last_seen_at, last_seen);
    assert!(registry.list(&alice).unwrap().is_empty());
    // A new sign-in is a new session.
    let fresh = sign_in(&f, &registry, &alice, "sess_b", &laptop());
    validator.validate(&fresh, &Requirement::new(), &laptop()).unwrap();
}

fn active_sessions_end_at_their_lifetime(db: &TestDatabase) {
    let f = setup(db);
    let (registry, validator) = registry(&f, RegistryPolicy::aal2());
    let alice = f.user("alice", Role::user());
    let claims = sign_in(&f, &registry, &alice, "sess_a", &laptop());
    let created = f.clock.now();
    // Active every 50 minutes, under the hour of inactivity, for 24 hours.
    while f.clock.now().duration_since(created).unwrap() + minutes(50) <= Duration::from_secs(24 * 3600) {
        f.clock.advance(minutes(50));
        validator.validate(&claims, &Requirement::new(), &laptop()).unwrap();
    }
    f.clock.set(created.saturating_add(Duration::from_secs(24 * 3600 + 1)));
    let denial = validator.validate(&claims, &Requirement::new(), &laptop()).unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::Expired {
            issued_at: created,
            lifetime: Duration::from_secs(24 * 3600)
        }
    );
    assert_eq!(denial.code(), ErrorCode::SessionExpired);
}

fn last_seen_moves_at_most_once_per_interval(db: &TestDatabase) {
    let f = setup(db);
    let policy = RegistryPolicy::new().touch_interval(Duration::from_secs(60));
    let (registry, validator) = registry(&f, policy);
    let alice = f.user("alice", Role::user());
    let claims = sign_in(&f, &registry, &alice, "sess_a", &laptop());
    let t = f.clock.now();
    let seen = || record(&registry, &claims).last_seen_at;
    let check_at = |offset: u64| {
        f.clock.set(t.saturating_add(Duration::from_secs(offset)));
        let session = validator.validate(&claims, &Requirement::new(), &laptop()).unwrap();
        session.session_record().unwrap().last_seen_at
    };
    // Checks within the interval read, and write nothing.
    for offset in [1, 10, 30, 59] {
        assert_eq!(check_at(offset), t);
        assert_eq!(seen(), t, "no write {offset}s in");
    }
    assert_eq!(check_at(60), t, "the check sees the row as it was");
    let first_write = t.saturating_add(Duration::from_secs(60));
    assert_eq!(seen(), first_write, "written once the row is an interval old");
    for offset in [61, 90, 119] {
        check_at(offset);
        assert_eq!(seen(), first_write, "no write {offset}s in");
    }
    check_at(121);
    assert_eq!(seen(), t.saturating_add(Duration::from_secs(121)));
    // A clock behind the row writes nothing.
    f.clock.set(t);
    validator.validate(&claims, &Requirement::new(), &laptop()).unwrap();
    assert_eq!(seen(), t.saturating_add(Duration::from_secs(121)));
    // The interval never exceeds a quarter of the inactivity timeout.
    assert_eq!(
        RegistryPolicy::aal3()
            .touch_interval(minutes(30))
            .effective_touch_interval(),
        Duration::from_secs(225)
    );
    assert_eq!(
        RegistryPolicy::new()
            .touch_interval(Duration::ZERO)
            .effective_touch_interval(),
        Duration::from_secs(1)
    );
}

fn client_changes_are_recorded_and_acted_on(db: &TestDatabase) {
    let f = setup(db);
    let (registry, validator) = registry(&f, RegistryPolicy::new());
    let alice = f.user("alice", Role::user());
    let claims = sign_in(&f, &registry, &alice, "sess_a", &laptop());
    let moved = RequestContext::new()
        .with_ip("192.0.2.99".parse().unwrap())
        .with_user_agent("Firefox/140 (X11)");
    let with = |policy: BindingPolicy| Requirement::new().binding(policy);

    // Off: allowed and silent, but recorded.
    f.clock.advance(Duration::from_secs(5));
    let session = validator.validate(&claims, &with(BindingPolicy::Off), &moved).unwrap();
    assert_eq!(session.binding_mismatch(), None);
    let row = record(&registry, &claims);
    assert_eq!(row.last_ip, Some("192.0.2.99".parse().unwrap()));
    assert_eq!((row.client_changes, row.client_changed_at), (1, Some(f.clock.now())));
    assert_eq!(row.created_ip, Some("203.0.113.7".parse().unwrap()), "creation is kept");

    // Log: allowed with a warning and the mismatch exposed; the same client
    // again is no new change.
    let (session, logs) = capture_logs(|| validator.validate(&claims, &with(BindingPolicy::Log), &moved).unwrap());
    let ip_only = BindingMismatch {
        ip: true,
        user_agent: false,
    };
    assert_eq!(session.binding_mismatch(), Some(ip_only));
    assert!(
        logs.iter()
            .any(|(level, message)| *level == tracing::Level::WARN && message.contains("binding mismatch")),
        "{logs:?}"
    );
    assert_eq!(record(&registry, &claims).client_changes, 1);

    // Strict: denied; the change was recorded all the same.
    let denial = validator
        .validate(&claims, &with(BindingPolicy::Strict), &moved)
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::BindingMismatch(ip_only));
    assert_eq!(denial.code(), ErrorCode::SessionBindingMismatch);

    // Step-up: denied until a full login later than the change.
    f.clock.advance(minutes(2));
    let denial = validator
        .validate(&claims, &with(BindingPolicy::StepUp), &moved)
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::BindingStepUp(ip_only));
    assert_eq!(denial.code(), ErrorCode::AuthReauthenticationRequired);
    assert_eq!(
        denial.remedy(),
        Remedy::StepUp(StepUp {
            max_age: Some(minutes(2)),
            mfa: false,
            min_level: None
        })
    );
    let stepped_up = SessionClaims::new(
        claims.session_id().clone(),
        alice.clone(),
        Role::user(),
        0,
        f.clock.now(),
    );
    validator
        .validate(&stepped_up, &with(BindingPolicy::StepUp), &moved)
        .unwrap();
    // Moving again asks again; the user agent counts as much as the IP.
    f.clock.advance(minutes(1));
    let other_browser = RequestContext::new()
        .with_ip("192.0.2.99".parse().unwrap())
        .with_user_agent("Chrome/150");
    let denial = validator
        .validate(&stepped_up, &with(BindingPolicy::StepUp), &other_browser)
        .unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::BindingStepUp(BindingMismatch {
            ip: true,
            user_agent: true
        })
    );
    assert_eq!(record(&registry, &claims).client_changes, 2);
    // Back on the laptop: nothing differs from creation, even under Strict.
    validator
        .validate(&claims, &with(BindingPolicy::Strict), &laptop())
        .unwrap();
    let row = record(&registry, &claims);
    assert_eq!(
        (row.client_changes, row.last_ip),
        (3, Some("203.0.113.7".parse().unwrap()))
    );
    // A request that does not say where it came from changes nothing recorded,
    // but does not match a binding either.
    validator
        .validate(&claims, &with(BindingPolicy::Off), &RequestContext::new())
        .unwrap();
    assert_eq!(record(&registry, &claims).client_changes, 3);
    assert_eq!(
        validator
            .validate(&claims, &with(BindingPolicy::Strict), &RequestContext::new())
            .unwrap_err()
            .code(),
        ErrorCode::SessionBindingMismatch
    );
}

fn unknown_sessions_are_denied_or_adopted(db: &TestDatabase) {
    let f = setup(db);
    let (registry, validator) = registry(&f, RegistryPolicy::aal2());
    let (alice, bob) = (f.user("alice", Role::user()), f.user("bob", Role::user()));
    let unregistered = f.sign_in(&alice, "sess_never");
    let denial = validator
        .validate(&unregistered, &Requirement::new(), &laptop())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::UnknownSession);
    assert_eq!(
        (denial.code(), denial.remedy()),
        (ErrorCode::SessionInvalid, Remedy::SignIn)
    );
    assert_eq!(registry.session(&unregistered.session_hash()).unwrap(), None);

    // A session id registered for bob, presented as alice's.
    sign_in(&f, &registry, &bob, "sess_shared", &laptop());
    let borrowed = f.sign_in(&alice, "sess_shared");
    assert_eq!(
        validator
            .validate(&borrowed, &Requirement::new(), &laptop())
            .unwrap_err()
            .reason(),
        &DenialReason::SessionOfAnotherUser
    );

    // Adopting: a provider's session is registered at its first check, as
    // created at its login, so that the lifetime counts from there.
    let adopting = f
        .validator()
        .with_registry(registry.clone().with_policy(RegistryPolicy::aal2().adopt_unknown(true)));
    let login = f.clock.now();
    f.clock.advance(minutes(30));
    let provider = SessionClaims::from_provider(SessionId::parse("sess_idp").unwrap(), alice.clone(), login);
    let session = adopting.validate(&provider, &Requirement::new(), &phone()).unwrap();
    let row = session.session_record().unwrap();
    assert_eq!((row.created_at, row.last_seen_at), (login, f.clock.now()));
    assert_eq!(row.created_ip, phone().client_ip());
    adopting.validate(&provider, &Requirement::new(), &phone()).unwrap();
    assert_eq!(registry.list(&alice).unwrap().len(), 1);
    f.clock.set(login.saturating_add(Duration::from_secs(24 * 3600 + 1)));
    let old = SessionClaims::from_provider(SessionId::parse("sess_old").unwrap(), alice.clone(), login);
    assert_eq!(
        adopting
            .validate(&old, &Requirement::new(), &phone())
            .unwrap_err()
            .code(),
        ErrorCode::SessionExpired,
        "an old login is adopted already expired"
    );
}

/// An app's own users: alice, with no version, changed at `valid_after`.
#[derive(Debug)]
struct AppUsers(Timestamp);

impl UserDirectory for AppUsers {
    fn session_state(&self, user: &UserId, _session: &SessionHash) -> Result<SessionState> {
        Ok(SessionState {
            user: (user.as_str() == "alice").then(|| UserState::from_valid_after(Role::user(), self.0)),
            session_revoked: false,
        })
    }
}

fn a_registry_beside_an_app_directory(db: &TestDatabase) {
    let f = setup(db);
    let registry = SessionRegistry::new(zt_db::Pool::connect(db.url()).unwrap())
        .with_clock(Arc::clone(&f.clock))
        .with_policy(RegistryPolicy::aal3());
    registry.migrate().unwrap();
    let validator = Validator::new(AppUsers(support::t0()))
        .with_clock(Arc::clone(&f.clock))
        .with_registry(registry.clone());
    let alice = UserId::parse("alice").unwrap();
    let claims = SessionClaims::from_provider(SessionId::parse("sess_a").unwrap(), alice.clone(), f.clock.now());
    registry.register(&claims, &laptop()).unwrap();
    let session = validator.validate(&claims, &Requirement::new(), &laptop()).unwrap();
    assert_eq!((session.role(), session.session_version()), (&Role::user(), None));
    f.clock.advance(minutes(16));
    assert_eq!(
        validator
            .validate(&claims, &Requirement::new(), &laptop())
            .unwrap_err()
            .code(),
        ErrorCode::SessionExpired
    );
    let nobody = SessionClaims::from_provider(
        SessionId::parse("sess_n").unwrap(),
        UserId::parse("nobody").unwrap(),
        f.clock.now(),
    );
    assert_eq!(
        validator
            .validate(&nobody, &Requirement::new(), &laptop())
            .unwrap_err()
            .code(),
        ErrorCode::SessionUserDeleted,
        "the directory answers first"
    );
}

fn registration_joins_the_callers_transaction(db: &TestDatabase) {
    let f = setup(db);
    let (registry, _) = registry(&f, RegistryPolicy::new());
    let alice = f.user("alice", Role::user());
    let (kept, dropped) = (f.sign_in(&alice, "sess_kept"), f.sign_in(&alice, "sess_dropped"));
    let mut pooled = f.store.pool().get().unwrap();
    macro_rules! in_transaction {
        ($conn:ident) => {{
            let rolled_back: std::result::Result<(), diesel::result::Error> = $conn.transaction(|conn| {
                registry.register_in(conn, &dropped, &laptop()).unwrap();
                assert_eq!(registry.list_in(conn, &alice).unwrap().len(), 1);
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(rolled_back.is_err());
            $conn
                .transaction(|conn| {
                    registry.register_in(conn, &kept, &laptop()).unwrap();
                    assert!(registry.sign_out_others_in(conn, &alice, &kept.session_hash()).unwrap() == 0);
                    Ok::<_, diesel::result::Error>(())
                })
                .unwrap();
        }};
    }
    match pooled.connection() {
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(conn) => in_transaction!(conn),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(conn) => in_transaction!(conn),
        other => panic!("no {} support in this build", other.backend()),
    }
    drop(pooled);
    assert_eq!(registry.session(&dropped.session_hash()).unwrap(), None);
    assert!(registry.session(&kept.session_hash()).unwrap().is_some());
    let mut pooled = f.store.pool().get().unwrap();
    assert!(registry.sign_out_in(&mut pooled, &alice, &kept.session_hash()).unwrap());
    assert_eq!(registry.sign_out_everywhere_in(&mut pooled, &alice).unwrap(), 0);
}

fn without_its_table_the_registry_fails_closed(db: &TestDatabase) {
    let f = setup(db);
    // The reference store's migrations do not create the registry's table.
    let registry = f.store.registry();
    let validator = f.validator().with_registry(registry.clone());
    let alice = f.user("alice", Role::user());
    let claims = f.sign_in(&alice, "sess_a");
    let denial = validator.validate(&claims, &Requirement::new(), &laptop()).unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::CheckFailed);
    assert_eq!(denial.code(), ErrorCode::SessionCheckFailed);
    assert!(registry.register(&claims, &laptop()).is_err());
    // The validator without a registry is unaffected.
    f.validator().validate(&claims, &Requirement::new(), &laptop()).unwrap();
    let _ = f.clock.now();
}

zt_testkit::backend_tests!(
    devices_are_listed_and_signed_out,
    idle_sessions_expire,
    active_sessions_end_at_their_lifetime,
    last_seen_moves_at_most_once_per_interval,
    client_changes_are_recorded_and_acted_on,
    unknown_sessions_are_denied_or_adopted,
    a_registry_beside_an_app_directory,
    registration_joins_the_callers_transaction,
    without_its_table_the_registry_fails_closed,
);
