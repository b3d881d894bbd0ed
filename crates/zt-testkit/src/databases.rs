//! A fresh database per test, on either backend.

use std::path::PathBuf;

use diesel::{Connection, PgConnection, RunQueryDsl};

/// Which backend a test database is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file in a temporary directory.
    Sqlite,
    /// A database of its own on the PostgreSQL server in `DATABASE_URL`.
    Postgres,
}

/// A fresh, empty database for one test. Dropping it deletes it.
#[derive(Debug)]
pub struct TestDatabase {
    backend: Backend,
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Directory(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

/// The variable that `cargo xtask test` sets to the throwaway server's URL.
pub const DATABASE_URL: &str = "DATABASE_URL";

impl TestDatabase {
    /// A new SQLite file, `test.db` in a new temporary directory.
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("zt-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        let path = dir.join("test.db");
        Self {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Directory(dir),
        }
    }

    /// A new database on the PostgreSQL server in `DATABASE_URL`.
    ///
    /// Returns `None`, and says so on stderr, only when `ZT_SKIP_POSTGRES=1`.
    /// Without either variable it panics: a PostgreSQL test is never skipped silently.
    pub fn postgres() -> Option<Self> {
        let Some(admin_url) = std::env::var(DATABASE_URL).ok().filter(|url| !url.is_empty()) else {
            if skip_postgres() {
                eprintln!("SKIPPED on PostgreSQL: ZT_SKIP_POSTGRES=1");
                return None;
            }
            panic!(
                "PostgreSQL tests need DATABASE_URL: run them with `cargo xtask test`, which starts a throwaway server, \
                 or set DATABASE_URL, or set ZT_SKIP_POSTGRES=1 to skip them"
            );
        };
        let name = format!("zt_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL for tests: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create a test database");
        let url = replace_database(&admin_url, &name);
        Some(Self {
            backend: Backend::Postgres,
            url,
            cleanup: Cleanup::PgDatabase { admin_url, name },
        })
    }

    /// The database for `backend`; see [`TestDatabase::sqlite`] and [`TestDatabase::postgres`].
    pub fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// The URL: `sqlite://path` or `postgres://...`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite file's directory, or a fresh temporary directory for
    /// PostgreSQL, for tests that need files beside the database.
    pub fn scratch_dir(&self) -> PathBuf {
        match &self.cleanup {
            Cleanup::Directory(dir) => dir.clone(),
            Cleanup::PgDatabase { name, .. } => {
                let dir = std::env::temp_dir().join(format!("zt-scratch-{name}"));
                std::fs::create_dir_all(&dir).expect("create a scratch directory");
                dir
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PgDatabase { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
                }
                let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("zt-scratch-{name}")));
            }
        }
    }
}

/// Whether `ZT_SKIP_POSTGRES=1` is set.
pub fn skip_postgres() -> bool {
    std::env::var("ZT_SKIP_POSTGRES").is_ok_and(|value| value == "1")
}

/// Replaces the database name in a `postgres://` URL, keeping its query string.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map(|i| authority_start + i);
    let mut out = match path_start {
        Some(i) => format!("{}/{database}", &base[..i]),
        None => format!("{base}/{database}"),
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Declares each named test function, `fn name(db: &TestDatabase)`, once per
/// backend: `sqlite::name` and `postgres::name`.
///
/// Each module is gated on the *calling* crate's backend feature: the macro
/// emits `#[cfg(feature = "sqlite")] mod sqlite` and
/// `#[cfg(feature = "postgres")] mod postgres`, and a `cfg` in a macro's
/// output is evaluated in the crate that calls it. So a suite runs on the
/// backends its crate was built with: `cargo test -p zt-audit` runs the
/// SQLite half, `--all-features` both. With neither feature no test is
/// declared and the functions are still type-checked, so nothing passes
/// vacuously and nothing warns as unused. A crate without these features
/// gets an `unexpected_cfgs` warning, never a silently empty suite.
///
/// A crate that always builds both backends and has no backend features of
/// its own (the `zt` command, the end-to-end tests) writes
/// `backend_tests!(always: name, ...)`, which declares both modules without a
/// `cfg`.
///
/// ```text
/// fn writes_and_reads(db: &TestDatabase) { /* ... */ }
/// zt_testkit::backend_tests!(writes_and_reads);
/// ```
#[macro_export]
macro_rules! backend_tests {
    (always: $($name:ident),* $(,)?) => {
        $crate::backend_tests!(@sqlite [] $($name),*);
        $crate::backend_tests!(@postgres [] $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::backend_tests!(@sqlite [#[cfg(feature = "sqlite")]] $($name),*);
        $crate::backend_tests!(@postgres [#[cfg(feature = "postgres")]] $($name),*);
        // Without a backend the bodies are still compiled, and used.
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        const _: () = {
            $(
                let _ = $name;
            )*
        };
    };
    (@sqlite [$(#[$gate:meta])?] $($name:ident),*) => {
        $(#[$gate])?
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let db = $crate::TestDatabase::sqlite();
                    super::$name(&db);
                }
            )*
        }
    };
    (@postgres [$(#[$gate:meta])?] $($name:ident),*) => {
        $(#[$gate])?
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(db) = $crate::TestDatabase::postgres() {
                        super::$name(&db);
                    }
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(replace_database("postgres://u@h:5/postgres", "x"), "postgres://u@h:5/x");
        assert_eq!(replace_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
