//! Session revalidation on real SQLite files and a real PostgreSQL server:
//! every admin operation ends sessions at their next check, step-up and MFA
//! requirements, binding policies, clock-skew edges, the cache, concurrency,
//! audit events and failing closed.
// Every test here needs a database: built with `store` but no backend, the
// suite is empty. `backend_tests!` runs each backend this crate was built with.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{capture_logs, setup};
use zt_error_codes::ErrorCode;
use zt_session::{
    AdminOperation, BindingMismatch, BindingPolicy, Clock, DenialReason, ErrorKind, Freshness, Remedy, Requirement,
    RoleChangePolicy, RoleHierarchy, SESSION_DENIED, StepUp,
};
use zt_testkit::TestDatabase;
use zt_types::{
    Actor, AuditEvent, AuditStatus, AuthFactors, AuthLevel, ClientBinding, RequestContext, Role, Severity, UserAgent,
    UserId,
};

fn request() -> RequestContext {
    RequestContext::new()
        .with_ip("203.0.113.7".parse().unwrap())
        .with_user_agent("Mozilla/5.0 (X11)")
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn valid_session_passes_with_current_state(db: &TestDatabase) {
    let f = setup(db);
    let alice = f.user("alice", Role::admin());
    let claims = f.sign_in(&alice, "sess_a");
    f.clock.advance(minutes(3));
    let session = f
        .validator
        .validate(&claims, &Requirement::new().min_role(Role::admin()), &request())
        .unwrap();
    assert_eq!(session.user_id(), &alice);
    assert_eq!(session.role(), &Role::admin());
    assert_eq!(session.session_version(), Some(0));
    assert_eq!(session.session_hash(), claims.session_hash());
    assert_eq!(session.auth_age(), minutes(3));
    assert_eq!(session.checked_at(), f.clock.now());
    assert!(!session.from_cache());
    assert_eq!(session.binding_mismatch(), None);
    assert_eq!(session.actor(), Actor::user(alice, None));
}

fn demotion_denies_the_next_check(db: &TestDatabase) {
    let f = setup(db);
    let alice = f.user("alice", Role::admin());
    let claims = f.sign_in(&alice, "sess_a");
    let admin_only = Requirement::new().min_role(Role::admin());
    f.validator.validate(&claims, &admin_only, &request()).unwrap();

    let change = f.store.change_role(&alice, &Role::user()).unwrap();
    assert_eq!(
        change.operation,
        AdminOperation::ChangeRole {
            from: Role::admin(),
            to: Role::user()
        }
    );
    assert_eq!((change.session_version, change.changed), (1, true));

    // Denied at once, for any requirement, not only admin-only ones.
    for requirement in [&admin_only, &Requirement::new()] {
        let denial = f.validator.validate(&claims, requirement, &request()).unwrap_err();
        assert_eq!(
            denial.reason(),
            &DenialReason::RoleChanged {
                at_issue: Role::admin(),
                current: Role::user()
            }
        );
        assert_eq!(denial.code(), ErrorCode::SessionRoleChanged);
        assert!(denial.reauthenticate());
        assert_eq!(denial.remedy(), Remedy::SignIn);
        assert_eq!(denial.user_id(), Some(&alice));
    }
    // Signing in again gives a working session as a user, which is not enough here.
    let fresh = f.sign_in(&alice, "sess_b");
    assert_eq!(
        f.validator
            .validate(&fresh, &Requirement::new(), &request())
            .unwrap()
            .role(),
        &Role::user()
    );
    let denial = f.validator.validate(&fresh, &admin_only, &request()).unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::InsufficientRole {
            required: Role::admin(),
            current: Role::user()
        }
    );
    assert_eq!(
        (denial.code(), denial.http_status()),
        (ErrorCode::AuthInsufficientRole, 403)
    );
    assert!(!denial.reauthenticate());
    assert_eq!(denial.remedy(), Remedy::None);
    // Setting the same role again changes nothing and ends nothing.
    let same = f.store.change_role(&alice, &Role::user()).unwrap();
    assert_eq!((same.session_version, same.changed), (1, false));
    f.validator.validate(&fresh, &Requirement::new(), &request()).unwrap();
}

fn promotion_needs_a_new_session_unless_configured(db: &TestDatabase) {
    let f = setup(db);
    let bob = f.user("bob", Role::user());
    let claims = f.sign_in(&bob, "sess_b");
    f.store.change_role(&bob, &Role::admin()).unwrap();
    let denial = f
        .validator
        .validate(&claims, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::RoleChanged {
            at_issue: Role::user(),
            current: Role::admin()
        }
    );
    assert!(denial.reauthenticate());

    let lenient = f.validator().role_change_policy(RoleChangePolicy::AllowPromotion);
    // The reference store bumps the version on every role change, so the
    // promoted user's old session still ends there.
    let denial = lenient.validate(&claims, &Requirement::new(), &request()).unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::VersionChanged { claimed: 0, current: 1 }
    );
    assert_eq!(denial.code(), ErrorCode::SessionRevoked);

    // A directory that bumps only on demotions: the promotion takes effect
    // in the running session, and a demotion still ends it.
    let carol = f.user("carol", Role::user());
    let claims = f.sign_in(&carol, "sess_c");
    f.execute("UPDATE zt_users SET role = 'admin' WHERE id = 'carol'");
    let session = lenient
        .validate(&claims, &Requirement::new().min_role(Role::admin()), &request())
        .unwrap();
    assert_eq!(session.role(), &Role::admin());
    assert_eq!(
        f.validator
            .validate(&claims, &Requirement::new(), &request())
            .unwrap_err()
            .code(),
        ErrorCode::SessionRoleChanged,
        "the default policy still wants a new session"
    );
    let admin_claims = f.sign_in(&carol, "sess_c2");
    f.execute("UPDATE zt_users SET role = 'user' WHERE id = 'carol'");
    let denial = lenient
        .validate(&admin_claims, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(
        denial.code(),
        ErrorCode::SessionRoleChanged,
        "a demotion is always denied"
    );
    // A change to a role outside the hierarchy is never a promotion.
    f.execute("UPDATE zt_users SET role = 'superuser' WHERE id = 'carol'");
    let user_claims = f.sign_in(&carol, "sess_c3");
    f.execute("UPDATE zt_users SET role = 'user' WHERE id = 'carol'");
    assert_eq!(
        lenient
            .validate(&user_claims, &Requirement::new(), &request())
            .unwrap_err()
            .code(),
        ErrorCode::SessionRoleChanged
    );
}

fn deleted_and_missing_users_are_denied(db: &TestDatabase) {
    let f = setup(db);
    let dave = f.user("dave", Role::user());
    let claims = f.sign_in(&dave, "sess_d");
    let change = f.store.delete_user(&dave).unwrap();
    assert_eq!(
        (change.operation.clone(), change.session_version, change.changed),
        (AdminOperation::DeleteUser, 1, true)
    );
    let denial = f
        .validator
        .validate(&claims, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::UserDeleted);
    assert_eq!(denial.code(), ErrorCode::SessionUserDeleted);
    assert!(!denial.reauthenticate());
    assert_eq!(denial.remedy(), Remedy::None);
    assert!(
        !f.store.delete_user(&dave).unwrap().changed,
        "deleting twice changes nothing"
    );
    assert!(f.store.user_state(&dave).unwrap().unwrap().is_deleted());
    // The id stays taken.
    assert_eq!(
        f.store.create_user(&dave, None, &Role::user()).unwrap_err().kind(),
        ErrorKind::Conflict
    );

    // A user who never existed, or whose row an app removed, counts as deleted.
    let ghost = zt_types::SessionClaims::new(
        zt_types::SessionId::parse("sess_ghost").unwrap(),
        UserId::parse("ghost").unwrap(),
        Role::user(),
        0,
        f.clock.now(),
    );
    let denial = f
        .validator
        .validate(&ghost, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(
        (denial.reason(), denial.code()),
        (&DenialReason::UserMissing, ErrorCode::SessionUserDeleted)
    );
    let erin = f.user("erin", Role::user());
    let claims = f.sign_in(&erin, "sess_e");
    f.execute("DELETE FROM zt_users WHERE id = 'erin'");
    assert_eq!(
        f.validator
            .validate(&claims, &Requirement::new(), &request())
            .unwrap_err()
            .reason(),
        &DenialReason::UserMissing
    );
}

fn disabled_users_are_denied_and_stay_so(db: &TestDatabase) {
    let f = setup(db);
    let frank = f.user("frank", Role::user());
    let claims = f.sign_in(&frank, "sess_f");
    assert!(f.store.disable_user(&frank).unwrap().changed);
    let denial = f
        .validator
        .validate(&claims, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::UserDisabled);
    assert_eq!(
        (denial.code(), denial.http_status()),
        (ErrorCode::SessionUserDisabled, 403)
    );
    assert!(!denial.reauthenticate());
    assert!(!f.store.disable_user(&frank).unwrap().changed);

    // Enabling does not bring the old session back.
    let enabled = f.store.enable_user(&frank).unwrap();
    assert_eq!(
        (enabled.operation.clone(), enabled.session_version),
        (AdminOperation::EnableUser, 2)
    );
    let denial = f
        .validator
        .validate(&claims, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::VersionChanged { claimed: 0, current: 2 }
    );
    f.validator
        .validate(&f.sign_in(&frank, "sess_f2"), &Requirement::new(), &request())
        .unwrap();
}

fn revoking_one_session_leaves_the_others(db: &TestDatabase) {
    let f = setup(db);
    let grace = f.user("grace", Role::user());
    let laptop = f.sign_in(&grace, "sess_laptop_secret");
    let phone = f.sign_in(&grace, "sess_phone");
    let change = f.store.revoke_session(&grace, &laptop.session_hash()).unwrap();
    assert_eq!(
        change.operation,
        AdminOperation::RevokeSession {
            session: laptop.session_hash()
        }
    );
    assert_eq!((change.session_version, change.changed), (0, true));
    let denial = f
        .validator
        .validate(&laptop, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::SessionRevoked);
    assert_eq!(denial.code(), ErrorCode::SessionRevoked);
    assert!(denial.reauthenticate());
    f.validator.validate(&phone, &Requirement::new(), &request()).unwrap();
    assert!(
        !f.store.revoke_session(&grace, &laptop.session_hash()).unwrap().changed,
        "revoking is idempotent"
    );

    // Only the 32-byte hash is stored, never the session id.
    let stored: Vec<Vec<u8>> = {
        use diesel::prelude::*;
        let query = diesel::dsl::sql::<diesel::sql_types::Binary>("SELECT session_hash FROM zt_session_revocations");
        match f.store.pool().get().unwrap().connection() {
            #[cfg(feature = "sqlite")]
            zt_db::AnyConnection::Sqlite(conn) => query.load(conn).unwrap(),
            #[cfg(feature = "postgres")]
            zt_db::AnyConnection::Postgres(conn) => query.load(conn).unwrap(),
            other => panic!("no {} support in this build", other.backend()),
        }
    };
    assert_eq!(stored, vec![laptop.session_hash().as_bytes().to_vec()]);
    assert!(!stored[0].windows(6).any(|w| w == b"secret"));

    // Unknown users cannot have sessions revoked.
    let nobody = UserId::parse("nobody").unwrap();
    assert_eq!(
        f.store
            .revoke_session(&nobody, &phone.session_hash())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

fn revoking_all_sessions_ends_every_one(db: &TestDatabase) {
    let f = setup(db);
    let heidi = f.user("heidi", Role::user());
    let sessions: Vec<_> = (0..3).map(|i| f.sign_in(&heidi, &format!("sess_h{i}"))).collect();
    let change = f.store.revoke_all_sessions(&heidi).unwrap();
    assert_eq!(
        (change.operation.clone(), change.session_version),
        (AdminOperation::RevokeAllSessions, 1)
    );
    for claims in &sessions {
        let denial = f
            .validator
            .validate(claims, &Requirement::new(), &request())
            .unwrap_err();
        assert_eq!(
            denial.reason(),
            &DenialReason::VersionChanged { claimed: 0, current: 1 }
        );
        assert_eq!(denial.code(), ErrorCode::SessionRevoked);
    }
    let after = f.sign_in(&heidi, "sess_h_new");
    assert_eq!(
        f.validator
            .validate(&after, &Requirement::new(), &request())
            .unwrap()
            .session_version(),
        Some(1)
    );
    // Claims from a version the store never issued are invalid, not revoked.
    let forged = zt_types::SessionClaims::new(
        zt_types::SessionId::parse("sess_forged").unwrap(),
        heidi.clone(),
        Role::user(),
        7,
        f.clock.now(),
    );
    let denial = f
        .validator
        .validate(&forged, &Requirement::new(), &request())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::VersionAhead { claimed: 7, current: 1 });
    assert_eq!(denial.code(), ErrorCode::SessionInvalid);
}

fn stale_login_on_a_destructive_action_steps_up(db: &TestDatabase) {
    let f = setup(db);
    let ivan = f.user("ivan", Role::admin());
    let claims = f.sign_in(&ivan, "sess_i");
    let destroy = Requirement::strict()
        .min_role(Role::admin())
        .operation("DELETE_PROJECT");
    f.clock.advance(minutes(10));
    assert_eq!(
        f.validator.validate(&claims, &destroy, &request()).unwrap().auth_age(),
        minutes(10),
        "the edge is allowed"
    );
    f.clock.advance(Duration::from_micros(1));
    let denial = f.validator.validate(&claims, &destroy, &request()).unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::StaleAuthentication {
            age: minutes(10) + Duration::from_micros(1),
            max_age: minutes(10)
        }
    );
    assert_eq!(
        (denial.code(), denial.http_status()),
        (ErrorCode::AuthReauthenticationRequired, 401)
    );
    assert!(denial.reauthenticate());
    let step_up = StepUp {
        max_age: Some(minutes(10)),
        mfa: false,
        min_level: None,
    };
    assert_eq!(denial.remedy(), Remedy::StepUp(step_up));
    assert_eq!(denial.step_up(), Some(step_up));
    assert_eq!(denial.operation(), Some("DELETE_PROJECT"));
    // Less demanding operations still pass with the same session.
    f.validator
        .validate(&claims, &Requirement::moderate(), &request())
        .unwrap();
    f.validator.validate(&claims, &Requirement::new(), &request()).unwrap();
    // After the step-up login, the same session passes.
    let stepped_up = zt_types::SessionClaims::new(
        claims.session_id().clone(),
        ivan.clone(),
        Role::admin(),
        claims.session_version().unwrap(),
        f.clock.now(),
    );
    f.validator.validate(&stepped_up, &destroy, &request()).unwrap();
    // The presets.
    f.clock.advance(Duration::from_secs(3600) + Duration::from_micros(1));
    assert!(
        f.validator
            .validate(&stepped_up, &Requirement::moderate(), &request())
            .is_err()
    );
    f.validator
        .validate(&stepped_up, &Requirement::lax(), &request())
        .unwrap();
    f.validator
        .validate(&stepped_up, &Requirement::new().freshness(Freshness::AAL3), &request())
        .unwrap();
}

fn mfa_is_required_where_asked(db: &TestDatabase) {
    let f = setup(db);
    let judy = f.user("judy", Role::user());
    let password_only = f.sign_in(&judy, "sess_j");
    let denial = f
        .validator
        .validate(&password_only, &Requirement::strict_mfa(), &request())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::MfaRequired { level: AuthLevel::Aal1 });
    assert_eq!(denial.code(), ErrorCode::AuthMfaRequired);
    assert!(denial.reauthenticate());
    assert_eq!(
        denial.step_up(),
        Some(StepUp {
            max_age: Some(minutes(10)),
            mfa: true,
            min_level: None
        })
    );
    f.validator
        .validate(&password_only, &Requirement::new(), &request())
        .unwrap();

    let with_otp = f
        .sign_in(&judy, "sess_j2")
        .with_factors(AuthFactors::PASSWORD.union(AuthFactors::OTP), AuthLevel::Aal2);
    f.validator
        .validate(&with_otp, &Requirement::strict_mfa(), &request())
        .unwrap();
    f.validator
        .validate(&with_otp, &Requirement::aal2(), &request())
        .unwrap();
    let denial = f
        .validator
        .validate(&with_otp, &Requirement::aal3(), &request())
        .unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::MfaRequired { level: AuthLevel::Aal2 });
    assert_eq!(denial.step_up().unwrap().min_level, Some(AuthLevel::Aal3));
    assert!(
        f.validator
            .validate(&password_only, &Requirement::aal2(), &request())
            .is_err()
    );
    let passkey = f
        .sign_in(&judy, "sess_j3")
        .with_factors(AuthFactors::WEBAUTHN, AuthLevel::Aal3);
    f.validator
        .validate(&passkey, &Requirement::aal3().require_mfa(), &request())
        .unwrap();
    // Step-up conditions come after the session's own validity: a revoked
    // session is told to sign in, not to add a factor.
    f.store.revoke_session(&judy, &password_only.session_hash()).unwrap();
    let denial = f
        .validator
        .validate(&password_only, &Requirement::strict_mfa(), &request())
        .unwrap_err();
    assert_eq!(denial.remedy(), Remedy::SignIn);
}

fn each_binding_policy_does_what_it_says(db: &TestDatabase) {
    let f = setup(db);
    let karl = f.user("karl", Role::user());
    let bound = f.sign_in(&karl, "sess_k").with_binding(ClientBinding {
        ip: Some("203.0.113.7".parse().unwrap()),
        user_agent_hash: Some(UserAgent::new("Mozilla/5.0 (X11)").hash()),
    });
    let moved = RequestContext::new()
        .with_ip("198.51.100.9".parse().unwrap())
        .with_user_agent("Mozilla/5.0 (X11)");
    let requirement = |policy| Requirement::new().binding(policy);

    // Matching requests pass under every policy, with nothing to report.
    for policy in [BindingPolicy::Off, BindingPolicy::Log, BindingPolicy::Strict] {
        assert_eq!(
            f.validator
                .validate(&bound, &requirement(policy), &request())
                .unwrap()
                .binding_mismatch(),
            None
        );
    }
    // Off: not even looked at.
    let (session, logs) = capture_logs(|| f.validator.validate(&bound, &requirement(BindingPolicy::Off), &moved));
    assert_eq!(session.unwrap().binding_mismatch(), None);
    assert!(logs.is_empty(), "{logs:?}");
    // Log, the default: allowed, warned about, exposed.
    let (session, logs) = capture_logs(|| f.validator.validate(&bound, &Requirement::new(), &moved));
    assert_eq!(
        session.unwrap().binding_mismatch(),
        Some(BindingMismatch {
            ip: true,
            user_agent: false
        })
    );
    assert!(
        logs.iter()
            .any(|(level, message)| *level == tracing::Level::WARN && message.contains("binding mismatch")),
        "{logs:?}"
    );
    // Strict: denied, curable by signing in again.
    let (denial, logs) = capture_logs(|| {
        f.validator
            .validate(&bound, &requirement(BindingPolicy::Strict), &moved)
    });
    let denial = denial.unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::BindingMismatch(BindingMismatch {
            ip: true,
            user_agent: false
        })
    );
    assert_eq!(denial.code(), ErrorCode::SessionBindingMismatch);
    assert!(denial.reauthenticate());
    assert!(
        logs.iter()
            .any(|(level, message)| *level == tracing::Level::WARN && message == "session denied"),
        "{logs:?}"
    );
    // A different browser, or a request without the bound values, mismatches too.
    let other_agent = RequestContext::new()
        .with_ip("203.0.113.7".parse().unwrap())
        .with_user_agent("curl/8.5");
    let denial = f
        .validator
        .validate(&bound, &requirement(BindingPolicy::Strict), &other_agent)
        .unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::BindingMismatch(BindingMismatch {
            ip: false,
            user_agent: true
        })
    );
    let denial = f
        .validator
        .validate(&bound, &requirement(BindingPolicy::Strict), &RequestContext::new())
        .unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::BindingMismatch(BindingMismatch {
            ip: true,
            user_agent: true
        })
    );
    // Unbound sessions have nothing to mismatch.
    let unbound = f.sign_in(&karl, "sess_k2");
    f.validator
        .validate(&unbound, &requirement(BindingPolicy::Strict), &moved)
        .unwrap();
    // A /24 tolerance keeps a session inside its network.
    let tolerant = f.validator().binding_ip_prefix(24, 64);
    let nearby = RequestContext::new()
        .with_ip("203.0.113.200".parse().unwrap())
        .with_user_agent("Mozilla/5.0 (X11)");
    tolerant
        .validate(&bound, &requirement(BindingPolicy::Strict), &nearby)
        .unwrap();
    assert!(
        tolerant
            .validate(&bound, &requirement(BindingPolicy::Strict), &moved)
            .is_err()
    );
}

fn clock_skew_edges(db: &TestDatabase) {
    let f = setup(db);
    let leo = f.user("leo", Role::user());
    let validator = f.validator().clock_skew(Duration::from_secs(30));
    let at = |offset_micros: i64| {
        let now = f.clock.now().unix_micros();
        zt_types::Timestamp::from_unix_micros(now + offset_micros).unwrap()
    };
    let claims_at = |authenticated_at| {
        zt_types::SessionClaims::new(
            zt_types::SessionId::parse("sess_l").unwrap(),
            leo.clone(),
            Role::user(),
            0,
            authenticated_at,
        )
    };
    let strict = Requirement::strict();
    // At the edge of the skew: age zero.
    let session = validator
        .validate(&claims_at(at(30_000_000)), &strict, &request())
        .unwrap();
    assert_eq!(session.auth_age(), Duration::ZERO);
    // One microsecond beyond: invalid claims.
    let denial = validator
        .validate(&claims_at(at(30_000_001)), &strict, &request())
        .unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::FromTheFuture {
            field: "authenticated_at",
            ahead: Duration::from_micros(30_000_001)
        }
    );
    assert_eq!(denial.code(), ErrorCode::SessionInvalid);
    assert!(denial.reauthenticate());
    // issued_at is held to the same bound.
    let issued_late = claims_at(at(0)).with_issued_at(at(31_000_000)).unwrap();
    let denial = validator
        .validate(&issued_late, &Requirement::new(), &request())
        .unwrap_err();
    assert!(matches!(
        denial.reason(),
        DenialReason::FromTheFuture { field: "issued_at", .. }
    ));
    // The skew never lengthens a freshness window.
    validator
        .validate(&claims_at(at(-600_000_000)), &strict, &request())
        .unwrap();
    let denial = validator
        .validate(&claims_at(at(-600_000_001)), &strict, &request())
        .unwrap_err();
    assert_eq!(denial.code(), ErrorCode::AuthReauthenticationRequired);
    // With no skew, any future time is invalid; the default is 60 seconds.
    let exact = f.validator().clock_skew(Duration::ZERO);
    exact.validate(&claims_at(at(0)), &strict, &request()).unwrap();
    assert_eq!(
        exact
            .validate(&claims_at(at(1)), &strict, &request())
            .unwrap_err()
            .code(),
        ErrorCode::SessionInvalid
    );
    f.validator
        .validate(&claims_at(at(60_000_000)), &strict, &request())
        .unwrap();
    assert!(
        f.validator
            .validate(&claims_at(at(60_000_001)), &strict, &request())
            .is_err()
    );
}

fn absolute_lifetime_expires_sessions(db: &TestDatabase) {
    let f = setup(db);
    let mia = f.user("mia", Role::user());
    let claims = f.sign_in(&mia, "sess_m");
    let eight_hours = Requirement::new().max_session_lifetime(Duration::from_secs(8 * 3600));
    f.clock.advance(Duration::from_secs(8 * 3600));
    f.validator.validate(&claims, &eight_hours, &request()).unwrap();
    f.clock.advance(Duration::from_micros(1));
    let denial = f.validator.validate(&claims, &eight_hours, &request()).unwrap_err();
    assert_eq!(
        denial.reason(),
        &DenialReason::Expired {
            issued_at: claims.issued_at(),
            lifetime: Duration::from_secs(8 * 3600)
        }
    );
    assert_eq!(denial.code(), ErrorCode::SessionExpired);
    assert_eq!(denial.remedy(), Remedy::SignIn);
}

fn role_hierarchy_is_configurable(db: &TestDatabase) {
    let f = setup(db);
    let hierarchy = RoleHierarchy::new(["viewer", "editor", "admin"]).unwrap();
    let validator = f.validator().role_hierarchy(hierarchy);
    let role = |name: &str| Role::parse(name).unwrap();
    let nina = f.user("nina", role("editor"));
    let claims = f.sign_in(&nina, "sess_n");
    validator
        .validate(&claims, &Requirement::new().min_role(role("viewer")), &request())
        .unwrap();
    validator
        .validate(&claims, &Requirement::new().min_role(role("editor")), &request())
        .unwrap();
    let denial = validator
        .validate(&claims, &Requirement::new().min_role(Role::admin()), &request())
        .unwrap_err();
    assert_eq!(denial.code(), ErrorCode::AuthInsufficientRole);
    // The default hierarchy does not know `editor`: no privilege.
    assert!(
        f.validator
            .validate(&claims, &Requirement::new().min_role(Role::user()), &request())
            .is_err()
    );
    // A requirement naming an unknown role denies everyone.
    assert!(
        validator
            .validate(&claims, &Requirement::new().min_role(role("root")), &request())
            .is_err()
    );
    assert_eq!(
        RoleHierarchy::new(["a", "a"]).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    assert!(RoleHierarchy::new(Vec::<&str>::new()).is_err());
}

fn cache_answers_only_non_sensitive_checks(db: &TestDatabase) {
    let f = setup(db);
    let validator = f.validator().cache(Duration::from_secs(5), 100);
    let olga = f.user("olga", Role::user());
    let claims = f.sign_in(&olga, "sess_o");
    let page = Requirement::new().sensitive(false);
    assert!(!validator.validate(&claims, &page, &request()).unwrap().from_cache());
    assert!(validator.validate(&claims, &page, &request()).unwrap().from_cache());

    f.store.revoke_all_sessions(&olga).unwrap();
    // The trade-off: within the TTL a non-sensitive check may miss the change...
    assert!(validator.validate(&claims, &page, &request()).unwrap().from_cache());
    // ...but a sensitive one never does.
    assert_eq!(
        validator
            .validate(&claims, &Requirement::new(), &request())
            .unwrap_err()
            .code(),
        ErrorCode::SessionRevoked
    );
    // The sensitive read refreshed the cache.
    assert!(validator.validate(&claims, &page, &request()).is_err());

    // Entries expire with the TTL.
    let again = f.sign_in(&olga, "sess_o2");
    validator.validate(&again, &page, &request()).unwrap();
    f.store.disable_user(&olga).unwrap();
    f.clock.advance(Duration::from_secs(5));
    assert!(validator.validate(&again, &page, &request()).unwrap().from_cache());
    f.clock.advance(Duration::from_micros(1));
    assert_eq!(
        validator.validate(&again, &page, &request()).unwrap_err().code(),
        ErrorCode::SessionUserDisabled
    );

    // This process's own admin operations can invalidate at once.
    f.store.enable_user(&olga).unwrap();
    let third = f.sign_in(&olga, "sess_o3");
    validator.validate(&third, &page, &request()).unwrap();
    f.store.delete_user(&olga).unwrap();
    validator.invalidate_user(&olga);
    assert_eq!(
        validator.validate(&third, &page, &request()).unwrap_err().code(),
        ErrorCode::SessionUserDeleted
    );
    // A validator without a cache always reads.
    let claims = f.sign_in(&f.user("pat", Role::user()), "sess_p");
    f.validator.validate(&claims, &page, &request()).unwrap();
    assert!(!f.validator.validate(&claims, &page, &request()).unwrap().from_cache());
}

fn concurrent_validation_from_eight_threads(db: &TestDatabase) {
    let f = setup(db);
    let users: Vec<UserId> = (0..8).map(|i| f.user(&format!("u{i}"), Role::user())).collect();
    let claims: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| f.sign_in(user, &format!("sess_{i}")))
        .collect();
    let run = |expect_ok: bool| {
        std::thread::scope(|scope| {
            for claims in &claims {
                let validator = f.validator.clone();
                scope.spawn(move || {
                    for _ in 0..50 {
                        let result = validator.validate(claims, &Requirement::strict(), &request());
                        assert_eq!(result.is_ok(), expect_ok, "{result:?}");
                    }
                });
            }
        });
    };
    run(true);
    for user in &users {
        f.store.revoke_all_sessions(user).unwrap();
    }
    run(false);
}

fn denials_and_admin_operations_become_audit_events(db: &TestDatabase) {
    let f = setup(db);
    let seen: Arc<Mutex<Vec<AuditEvent>>> = Arc::default();
    let sink = {
        let seen = Arc::clone(&seen);
        move |event: AuditEvent| seen.lock().unwrap().push(event)
    };
    let validator = f.validator().audit_denials(sink);
    let quinn = f.user("quinn", Role::admin());
    let claims = f.sign_in(&quinn, "sess_q");
    let context = request().with_request_id(zt_types::RequestId::parse("req-7").unwrap());
    validator.validate(&claims, &Requirement::new(), &context).unwrap();
    assert!(seen.lock().unwrap().is_empty(), "allowed checks emit nothing");

    let change = f.store.change_role(&quinn, &Role::user()).unwrap();
    let admin = Actor::user(UserId::parse("root").unwrap(), None);
    let event = change.audit_event(admin.clone(), &context).unwrap();
    assert_eq!(
        (event.action().as_str(), event.resource().as_str()),
        ("UPDATE_ROLE", "users")
    );
    assert_eq!(event.resource_id().unwrap().as_str(), "quinn");
    assert_eq!(event.status(), AuditStatus::Success);
    assert_eq!(event.actor(), &admin);
    assert_eq!(event.created_at(), change.at);
    let metadata = event.metadata().to_value();
    assert_eq!(
        (metadata["from"].as_str(), metadata["to"].as_str()),
        (Some("admin"), Some("user"))
    );
    assert_eq!(metadata["session_version"], 1);

    let denial = validator
        .validate(&claims, &Requirement::new().operation("EXPORT_DATA"), &context)
        .unwrap_err();
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (event.action().as_str(), event.resource().as_str()),
        (SESSION_DENIED, "sessions")
    );
    assert_eq!(event.resource_id().unwrap().as_str(), claims.session_hash().to_string());
    assert_eq!(event.status(), AuditStatus::Denied);
    assert_eq!(event.error_code().unwrap().as_str(), "SESSION_ROLE_CHANGED");
    assert_eq!(event.actor(), &Actor::user(quinn.clone(), None));
    assert_eq!(event.context().request_id().unwrap().as_str(), "req-7");
    let metadata = event.metadata().to_value();
    assert_eq!(metadata["reason"], "role_changed");
    assert_eq!(metadata["operation"], "EXPORT_DATA");
    assert_eq!(metadata["remedy"], "sign_in");
    assert!(
        !event.metadata().as_str().contains("sess_q"),
        "the session id never reaches the log"
    );
    assert_eq!(denial.audit_event(&context).unwrap().error_code(), event.error_code());

    // Every admin operation has its action.
    let revoke = f.store.revoke_session(&quinn, &claims.session_hash()).unwrap();
    let event = revoke.audit_event(admin.clone(), &context).unwrap();
    assert_eq!(event.action().as_str(), "REVOKE_SESSION");
    assert_eq!(
        event.metadata().to_value()["session_hash"],
        claims.session_hash().to_string()
    );
    let actions: Vec<&str> = [
        f.store.disable_user(&quinn).unwrap(),
        f.store.enable_user(&quinn).unwrap(),
        f.store.revoke_all_sessions(&quinn).unwrap(),
        f.store.delete_user(&quinn).unwrap(),
    ]
    .iter()
    .map(|change| change.operation.action())
    .collect();
    assert_eq!(
        actions,
        ["DISABLE_USER", "ENABLE_USER", "REVOKE_ALL_SESSIONS", "DELETE_USER"]
    );
    // A request without claims is denied as missing, and audited as anonymous.
    let denial = validator
        .validate_optional(None, &Requirement::new(), &context)
        .unwrap_err();
    assert_eq!(
        (denial.code(), denial.remedy()),
        (ErrorCode::SessionMissing, Remedy::SignIn)
    );
    assert_eq!(seen.lock().unwrap().last().unwrap().actor(), &Actor::Anonymous);
}

fn admin_operations_report_typed_errors(db: &TestDatabase) {
    let f = setup(db);
    let nobody = UserId::parse("nobody").unwrap();
    for result in [
        f.store.change_role(&nobody, &Role::admin()),
        f.store.disable_user(&nobody),
        f.store.enable_user(&nobody),
        f.store.delete_user(&nobody),
        f.store.revoke_all_sessions(&nobody),
    ] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert_eq!(error.code(), ErrorCode::ResourceNotFound);
    }
    assert_eq!(f.store.user_state(&nobody).unwrap(), None);
    let email = zt_types::Email::parse_address("rita@example.com").unwrap();
    let rita = UserId::parse("rita").unwrap();
    f.store.create_user(&rita, Some(&email), &Role::user()).unwrap();
    let error = f
        .store
        .create_user(&UserId::parse("rita2").unwrap(), Some(&email), &Role::user())
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::Conflict, ErrorCode::ResourceConflict)
    );
    // A deleted account releases its email but keeps its id.
    f.store.delete_user(&rita).unwrap();
    f.store
        .create_user(&UserId::parse("rita2").unwrap(), Some(&email), &Role::user())
        .unwrap();
    assert_eq!(
        f.store.change_role(&rita, &Role::admin()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(f.store.disable_user(&rita).unwrap_err().kind(), ErrorKind::NotFound);
}

fn old_revocations_can_be_pruned(db: &TestDatabase) {
    let f = setup(db);
    let sam = f.user("sam", Role::user());
    let old = f.sign_in(&sam, "sess_s1");
    f.store.revoke_session(&sam, &old.session_hash()).unwrap();
    f.clock.advance(Duration::from_secs(3600));
    let recent = f.sign_in(&sam, "sess_s2");
    f.store.revoke_session(&sam, &recent.session_hash()).unwrap();
    assert_eq!(
        f.store
            .prune_revocations(f.clock.now().saturating_sub(Duration::from_secs(60)))
            .unwrap(),
        1
    );
    assert_eq!(
        f.validator
            .validate(&recent, &Requirement::new(), &request())
            .unwrap_err()
            .code(),
        ErrorCode::SessionRevoked
    );
}

fn database_errors_fail_closed(db: &TestDatabase) {
    let f = setup(db);
    let tom = f.user("tom", Role::user());
    let claims = f.sign_in(&tom, "sess_t");
    f.validator.validate(&claims, &Requirement::new(), &request()).unwrap();
    f.execute("DROP TABLE zt_session_revocations");
    let (denial, logs) = capture_logs(|| f.validator.validate(&claims, &Requirement::new(), &request()));
    let denial = denial.unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::CheckFailed);
    assert_eq!(denial.code(), ErrorCode::SessionCheckFailed);
    assert_eq!(denial.severity(), Severity::Critical);
    assert_eq!((denial.http_status(), denial.remedy()), (503, Remedy::RetryLater));
    assert!(!denial.reauthenticate());
    assert_eq!(denial.store_error().unwrap().kind(), ErrorKind::Database);
    assert!(std::error::Error::source(&denial).is_some());
    assert!(
        logs.iter()
            .any(|(level, message)| *level == tracing::Level::ERROR && message == "session denied"),
        "{logs:?}"
    );
    // Even the cache does not turn an error into an allowance.
    let cached = f.validator().cache(Duration::from_secs(60), 10);
    assert!(
        cached
            .validate(&claims, &Requirement::new().sensitive(false), &request())
            .is_err()
    );
}

zt_testkit::backend_tests!(
    valid_session_passes_with_current_state,
    demotion_denies_the_next_check,
    promotion_needs_a_new_session_unless_configured,
    deleted_and_missing_users_are_denied,
    disabled_users_are_denied_and_stay_so,
    revoking_one_session_leaves_the_others,
    revoking_all_sessions_ends_every_one,
    stale_login_on_a_destructive_action_steps_up,
    mfa_is_required_where_asked,
    each_binding_policy_does_what_it_says,
    clock_skew_edges,
    absolute_lifetime_expires_sessions,
    role_hierarchy_is_configurable,
    cache_answers_only_non_sensitive_checks,
    concurrent_validation_from_eight_threads,
    denials_and_admin_operations_become_audit_events,
    admin_operations_report_typed_errors,
    old_revocations_can_be_pruned,
    database_errors_fail_closed,
);
