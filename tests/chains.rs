//! The audit log's hash chains, on real SQLite files and a real PostgreSQL
//! server: a log written before chains existed keeps verifying after the
//! upgrade, open transactions that audit do not wait for one another, and a
//! tenant's pinned chain verifies on its own.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::migration::MigrationSource;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zt_audit::{AuditFilter, AuditLog, ChainKey, TamperKind};
use zt_db::{AnyConnection, AsConnection, Pool, PoolConfig};
use zt_testkit::{Backend, TestDatabase};
use zt_types::{Actor, AuditEvent, AuditStatus};

fn key() -> ChainKey {
    ChainKey::from_bytes(&(11..11 + 32).collect::<Vec<u8>>()).unwrap()
}

fn pool(db: &TestDatabase, size: u32) -> Pool {
    Pool::connect_with(&db.url().parse().unwrap(), &PoolConfig::new().max_size(size)).unwrap()
}

fn event(i: u32) -> AuditEvent {
    AuditEvent::builder(Actor::System, "STEP", "jobs")
        .resource_id(i)
        .status(AuditStatus::Success)
        .build()
        .unwrap()
}

fn exec(conn: &mut impl AsConnection, sql: &str) {
    match conn.as_connection() {
        AnyConnection::Sqlite(conn) => diesel::sql_query(sql).execute(conn).unwrap(),
        AnyConnection::Postgres(conn) => diesel::sql_query(sql).execute(conn).unwrap(),
        other => panic!("no {} in this build", other.backend()),
    };
}

/// zt-audit's first migration only: the schema an earlier release created.
struct FirstRelease(&'static EmbeddedMigrations);

impl<DB: diesel::backend::Backend> MigrationSource<DB> for FirstRelease {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<DB>>>> {
        let mut migrations = MigrationSource::<DB>::migrations(self.0)?;
        migrations.retain(|migration| migration.name().version().to_string() == "20261129000001");
        Ok(migrations)
    }
}

/// A row's MAC under encoding version 1, built from the crate docs'
/// specification, not from zt-audit's code: the domain, the version, the
/// position, the event id, the time, then the text fields of a system event
/// with empty metadata and no addresses, then the previous MAC.
fn v1_mac(key: &[u8], seq: i64, event_id: &[u8; 16], micros: i64, resource_id: &str, prev: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    let text = |mac: &mut Hmac<Sha256>, value: &str| {
        mac.update(&u32::try_from(value.len()).unwrap().to_be_bytes());
        mac.update(value.as_bytes());
    };
    mac.update(b"zt-audit-chain\0");
    mac.update(&1i16.to_be_bytes());
    mac.update(&seq.to_be_bytes());
    mac.update(event_id);
    mac.update(&micros.to_be_bytes());
    text(&mut mac, "system");
    mac.update(&[0, 0]); // no user id, no email
    text(&mut mac, "LEGACY");
    text(&mut mac, "jobs");
    mac.update(&[1]);
    text(&mut mac, resource_id);
    text(&mut mac, "{}");
    mac.update(&[0, 0, 0]); // no client IP, no peer IP, no user agent
    text(&mut mac, "success");
    mac.update(&[0, 0]); // no error code, no request id
    mac.update(prev);
    mac.finalize().into_bytes().into()
}

/// An earlier release wrote five rows; the upgrade adds chains; the old rows
/// verify, new rows continue chain 1, and tampering with an old row is found.
fn a_log_from_before_chains_keeps_verifying(db: &TestDatabase) {
    let pool = pool(db, 2);
    let mut conn = pool.get().unwrap();
    // The earlier release's migration, recorded as that release did.
    let source = match conn.connection() {
        AnyConnection::Sqlite(conn) => {
            let first = zt_audit::MIGRATIONS.sqlite;
            conn.run_pending_migrations(FirstRelease(first)).unwrap().len()
        }
        AnyConnection::Postgres(conn) => {
            let first = zt_audit::MIGRATIONS.postgres;
            conn.run_pending_migrations(FirstRelease(first)).unwrap().len()
        }
        other => panic!("no {} in this build", other.backend()),
    };
    assert_eq!(source, 1);

    let mut prev = [0u8; 32];
    for seq in 1..=5i64 {
        let event_id = [u8::try_from(seq).unwrap(); 16];
        let uuid = uuid_text(&event_id);
        let micros = 1_764_417_600_000_000 + seq;
        let mac = v1_mac(
            &(11..43).collect::<Vec<u8>>(),
            seq,
            &event_id,
            micros,
            &seq.to_string(),
            &prev,
        );
        let created_at = zt_types::Timestamp::from_unix_micros(micros).unwrap().to_string();
        let backend = db.backend();
        let blob = |m: &[u8]| match backend {
            Backend::Sqlite => format!("X'{}'", hex(m)),
            Backend::Postgres => format!("decode('{}', 'hex')", hex(m)),
        };
        let created = match backend {
            Backend::Sqlite => format!("'{created_at}'"),
            Backend::Postgres => format!("'{created_at}'::timestamptz"),
        };
        exec(
            &mut conn,
            &format!(
                "INSERT INTO audit_logs (id, event_id, created_at, actor_kind, action, resource, resource_id, \
                 metadata, status, chain_version, prev_mac, mac) VALUES ({seq}, '{uuid}', {created}, 'system', \
                 'LEGACY', 'jobs', '{seq}', '{{}}', 'success', 1, {}, {})",
                blob(&prev),
                blob(&mac)
            ),
        );
        prev = mac;
    }
    exec(
        &mut conn,
        &format!(
            "UPDATE audit_chain_head SET seq = 5, mac = {} WHERE id = 1",
            match db.backend() {
                Backend::Sqlite => format!("X'{}'", hex(&prev)),
                Backend::Postgres => format!("decode('{}', 'hex')", hex(&prev)),
            }
        ),
    );
    drop(conn);

    // The upgrade: zt moves the earlier bookkeeping and applies the chains.
    let log = AuditLog::new(pool.clone(), &key());
    assert_eq!(log.migrate().unwrap(), ["20261130000001", "20261130000004"]);
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, 5);

    // New rows: version 2; on SQLite they continue chain 1.
    for i in 0..3 {
        log.record(&event(i)).unwrap();
    }
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, 8);
    let legacy = log
        .query(&AuditFilter::new().action("LEGACY"), &zt_audit::PageRequest::first(10))
        .unwrap();
    assert!(
        legacy
            .records
            .iter()
            .all(|r| r.chain_version == 1 && r.chain == 1 && r.chain_seq == r.id)
    );

    // Tampering with an old row is still found, at its position.
    let mut conn = pool.get().unwrap();
    match db.backend() {
        Backend::Sqlite => exec(&mut conn, "DROP TRIGGER audit_logs_no_update"),
        Backend::Postgres => exec(&mut conn, "ALTER TABLE audit_logs DISABLE TRIGGER USER"),
    }
    exec(&mut conn, "UPDATE audit_logs SET resource = 'payroll' WHERE id = 3");
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(
        (finding.chain, finding.position, finding.kind),
        (1, 3, TamperKind::Modified)
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let h = hex(bytes);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Four transactions hold their audit rows open at the same time: none waits
/// for another, because each takes a chain no other transaction holds. With
/// one shared head the second would block until the first committed, and the
/// first waits for all four, so this would time out.
fn open_transactions_do_not_wait_for_each_other(db: &TestDatabase) {
    if db.backend() == Backend::Sqlite {
        // SQLite lets one writer in at a time, whatever zt does.
        return;
    }
    let writers = 4;
    let log = AuditLog::new(pool(db, 8), &key()).with_chains(8);
    log.migrate().unwrap();
    let (appended, all_appended) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let (log, appended, released) = (log.clone(), appended.clone(), std::sync::Arc::clone(&released));
            std::thread::spawn(move || {
                let mut pooled = log.pool().get().unwrap();
                let AnyConnection::Postgres(conn) = pooled.connection() else {
                    panic!("a PostgreSQL test");
                };
                diesel::Connection::transaction::<_, zt_audit::Error, _>(conn, |conn| {
                    log.record_in(conn, &event(writer))?;
                    appended.send(()).unwrap();
                    // Hold the transaction open until every writer appended.
                    released.lock().unwrap().recv_timeout(Duration::from_secs(20)).unwrap();
                    Ok(())
                })
                .unwrap();
            })
        })
        .collect();
    for _ in 0..writers {
        all_appended
            .recv_timeout(Duration::from_secs(10))
            .expect("an open transaction waited for another one's chain head");
    }
    for _ in 0..writers {
        release.send(()).unwrap();
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, 4);
    let used = log.heads().unwrap().iter().filter(|head| head.seq > 0).count();
    assert_eq!(used, writers as usize, "each open transaction took a chain of its own");
}

/// A tenant's events go to its own chain, which verifies and queries on its
/// own; tampering in another chain does not hide in it, and vice versa.
fn a_pinned_chain_verifies_on_its_own(db: &TestDatabase) {
    let log = AuditLog::new(pool(db, 4), &key());
    log.migrate().unwrap();
    let tenant = log.on_chain(100).unwrap();
    for i in 0..5 {
        tenant.record(&event(i)).unwrap();
        log.record(&event(100 + i)).unwrap();
    }
    let mut conn = log.pool().get().unwrap();
    let in_transaction: Result<(), zt_audit::Error> = match conn.connection() {
        AnyConnection::Sqlite(conn) => conn.immediate_transaction(|c| tenant.record_in(c, &event(5)).map(drop)),
        AnyConnection::Postgres(conn) => {
            diesel::Connection::transaction(conn, |c| tenant.record_in(c, &event(5)).map(drop))
        }
        other => panic!("no {} in this build", other.backend()),
    };
    in_transaction.unwrap();
    drop(conn);
    assert_eq!(log.count(&AuditFilter::new().chain(100)).unwrap(), 6);
    let report = log.verify_chain(100, None, |_| {}).unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!((report.rows_checked, report.chains_checked), (6, 1));
    assert!(log.verify().unwrap().is_valid());
    assert!(log.on_chain(0).is_err());

    // An attacker rewrites one of the tenant's rows.
    let mut conn = log.pool().get().unwrap();
    match db.backend() {
        Backend::Sqlite => exec(&mut conn, "DROP TRIGGER audit_logs_no_update"),
        Backend::Postgres => exec(&mut conn, "ALTER TABLE audit_logs DISABLE TRIGGER USER"),
    }
    exec(
        &mut conn,
        "UPDATE audit_logs SET resource = 'payroll' WHERE chain_id = 100 AND chain_seq = 4",
    );
    let finding = log.verify_chain(100, None, |_| {}).unwrap().finding.unwrap();
    assert_eq!(
        (finding.chain, finding.position, finding.kind),
        (100, 4, TamperKind::Modified)
    );
    assert_eq!(log.verify().unwrap().finding.unwrap().chain, 100);
    // Rows of a chain without a head were not written by zt.
    log.on_chain(200).unwrap().record(&event(200)).unwrap();
    assert!(log.verify_chain(200, None, |_| {}).unwrap().is_valid());
    exec(&mut conn, "DELETE FROM audit_chain_head WHERE id = 200");
    let finding = log.verify_chain(200, None, |_| {}).unwrap().finding.unwrap();
    assert_eq!(
        (finding.chain, finding.kind),
        (200, TamperKind::Inserted),
        "{}",
        finding.detail
    );
}

zt_testkit::backend_tests!(
    always:
    a_log_from_before_chains_keeps_verifying,
    open_transactions_do_not_wait_for_each_other,
    a_pinned_chain_verifies_on_its_own,
);
