//! Failing closed for real: a private PostgreSQL server is stopped between
//! two checks. The check is denied with `SESSION_CHECK_FAILED`, quickly, and
//! the first check after the restart succeeds again.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_error_codes::ErrorCode;
use zt_session::{DenialReason, ErrorKind, Remedy, Requirement, UserStore, Validator};
use zt_testkit::{Durability, PgCluster, skip_postgres};
use zt_types::{RequestContext, Role, SessionClaims, SessionId, Severity, Timestamp, UserId};

#[test]
fn stopped_server_denies_then_heals() {
    if skip_postgres() {
        eprintln!("SKIPPED on PostgreSQL: ZT_SKIP_POSTGRES=1");
        return;
    }
    let mut cluster = PgCluster::start(Durability::Fast).unwrap();
    let url: DatabaseUrl = cluster.url().parse().unwrap();
    let config = PoolConfig::new()
        .max_size(2)
        .connection_timeout(Duration::from_millis(500));
    let store = UserStore::new(Pool::connect_with(&url, &config).unwrap());
    store.migrate().unwrap();
    let alice = UserId::parse("alice").unwrap();
    store.create_user(&alice, None, &Role::admin()).unwrap();
    let claims = SessionClaims::new(
        SessionId::parse("sess_outage").unwrap(),
        alice,
        Role::admin(),
        0,
        Timestamp::now(),
    );
    let validator = Validator::new(store);
    let request = RequestContext::new();
    let sensitive = Requirement::strict().min_role(Role::admin());
    validator.validate(&claims, &sensitive, &request).unwrap();

    cluster.stop().unwrap();
    // The first check finds its pooled connection closed; the next ones
    // cannot connect and give up after the pool's 500 ms timeout. None allows.
    for _ in 0..3 {
        let started = Instant::now();
        let denial = validator.validate(&claims, &sensitive, &request).unwrap_err();
        eprintln!("denied in {:?}", started.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(denial.reason(), &DenialReason::CheckFailed, "{denial}");
        assert_eq!(denial.code(), ErrorCode::SessionCheckFailed);
        assert_eq!(denial.severity(), Severity::Critical);
        assert_eq!(denial.remedy(), Remedy::RetryLater);
        assert_eq!(denial.store_error().unwrap().kind(), ErrorKind::Unavailable, "{denial}");
    }
    // A non-sensitive check with a cache fails closed too: nothing was cached for it.
    let cached = validator.clone().cache(Duration::from_secs(60), 16);
    assert!(
        cached
            .validate(&claims, &Requirement::new().sensitive(false), &request)
            .is_err()
    );

    cluster.start_server().unwrap();
    // The failed checks discarded the dead connections, so the very next
    // check connects afresh and succeeds.
    assert_eq!(
        validator.validate(&claims, &sensitive, &request).unwrap().role(),
        &Role::admin()
    );
    // And at once from then on: the dead connections are gone from the pool.
    for _ in 0..5 {
        validator.validate(&claims, &sensitive, &request).unwrap();
    }
}
