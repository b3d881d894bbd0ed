//! A least-privilege PostgreSQL role for the app at run time.
//!
//! The role that applies migrations owns zt's tables, and a table's owner can
//! `ALTER TABLE audit_logs DISABLE TRIGGER USER` and then rewrite history.
//! The app should run as a role that does not own them and holds only what
//! each [`MigrationSet`] lists in [`MigrationSet::runtime_privileges`]: on the
//! audit log, `SELECT` and `INSERT`, and nothing that updates, deletes or
//! alters a row.

use std::fmt::Write as _;

use crate::{Error, ErrorKind, MIGRATIONS_TABLE, MigrationSet};

/// What the app's runtime needs on one object of a migration set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimePrivilege {
    /// `TABLE` or `SEQUENCE`.
    pub kind: &'static str,
    /// The object's name, unquoted, in the migrations' schema.
    pub object: &'static str,
    /// The privileges, such as `SELECT, INSERT`.
    pub privileges: &'static str,
}

/// The longest role name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

/// A runtime role to create or print: a validated PostgreSQL role name.
///
/// ```
/// let role = zt_db::RuntimeRole::new("app_runtime")?;
/// let sql = role.sql(&[]);
/// assert!(sql.contains("CREATE ROLE app_runtime NOLOGIN"));
/// assert!(zt_db::RuntimeRole::new("app; DROP TABLE audit_logs").is_err());
/// # Ok::<(), zt_db::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRole {
    name: String,
}

impl RuntimeRole {
    /// A role named `name`: lowercase letters, digits and `_`, not starting
    /// with a digit or `pg_`, at most 63 bytes. The rule keeps the name the
    /// same quoted or not, so no quoting can be got wrong.
    pub fn new(name: &str) -> Result<Self, Error> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && !name.starts_with("pg_")
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a runtime role name is 1 to 63 lowercase letters, digits and `_`, \
                 not starting with a digit or `pg_`",
            ));
        }
        Ok(Self { name: name.to_owned() })
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL that creates the role (`NOLOGIN`, when it does not exist yet)
    /// and sets its privileges on the objects of `sets` to exactly what they
    /// list, for a DBA to read and run. Objects that do not exist yet are
    /// skipped, so it can run before every set is migrated (run it again
    /// after).
    pub fn sql(&self, sets: &[&MigrationSet]) -> String {
        let role = &self.name;
        let mut sql = format!(
            "-- zt runtime role {role}: it owns nothing and may not update or delete audit rows.\n\
             -- Let the app log in as it (ALTER ROLE {role} LOGIN PASSWORD '...'),\n\
             -- or as a login role that owns nothing and is granted it (GRANT {role} TO app_login).\n\
             DO $$ BEGIN\n  \
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN\n    \
             CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;\n  \
             END IF;\nEND $$;\n\
             GRANT USAGE ON SCHEMA public TO {role};\n"
        );
        for privilege in privileges(sets) {
            let (kind, object, privileges) = (privilege.kind, privilege.object, privilege.privileges);
            // REVOKE first, so that a role granted more before ends with exactly this.
            let _ = write!(
                sql,
                "DO $$ BEGIN\n  \
                 IF to_regclass('{object}') IS NOT NULL THEN\n    \
                 REVOKE ALL ON {kind} {object} FROM {role};\n    \
                 GRANT {privileges} ON {kind} {object} TO {role};\n  \
                 END IF;\nEND $$;\n"
            );
        }
        sql
    }

    /// Creates the role when it does not exist and grants it exactly what
    /// `sets` list, on PostgreSQL; returns one line per object granted.
    ///
    /// Refuses a role that is a superuser, or that owns one of the objects
    /// (`InvalidInput`): either could turn the audit log's triggers off. On
    /// SQLite, which has no roles, it is `InvalidInput` too: protect the
    /// database file with file permissions instead.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub fn apply(&self, conn: &mut impl crate::AsConnection, sets: &[&MigrationSet]) -> Result<Vec<String>, Error> {
        match conn.as_connection() {
            #[cfg(feature = "sqlite")]
            crate::AnyConnection::Sqlite(_) => Err(Error::new(
                ErrorKind::InvalidInput,
                "SQLite has no roles: keep the database file readable and writable by the app's user only",
            )),
            #[cfg(feature = "postgres")]
            crate::AnyConnection::Postgres(conn) => self.apply_postgres(conn, sets),
            crate::AnyConnection::_Unbuilt(never, _) => match never {},
        }
    }

    #[cfg(feature = "postgres")]
    fn apply_postgres(&self, conn: &mut diesel::PgConnection, sets: &[&MigrationSet]) -> Result<Vec<String>, Error> {
        use diesel::connection::SimpleConnection as _;
        use diesel::prelude::*;
        use diesel::sql_types::{Bool, Text};

        #[derive(QueryableByName)]
        struct Found {
            #[diesel(sql_type = Bool)]
            found: bool,
        }
        let failed =
            |e: diesel::result::Error| Error::new(ErrorKind::Migration, format!("cannot set up the runtime role: {e}"));
        let superuser =
            diesel::sql_query("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1 AND rolsuper) AS found")
                .bind::<Text, _>(&self.name)
                .get_result::<Found>(conn)
                .map_err(failed)?;
        if superuser.found {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is a superuser; a runtime role must not be one", self.name),
            ));
        }
        let mut granted = Vec::new();
        for privilege in privileges(sets) {
            let exists = diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS found")
                .bind::<Text, _>(privilege.object)
                .get_result::<Found>(conn)
                .map_err(failed)?;
            if !exists.found {
                continue;
            }
            let owner = diesel::sql_query(
                "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
                 WHERE c.oid = to_regclass($1) AND r.rolname = $2) AS found",
            )
            .bind::<Text, _>(privilege.object)
            .bind::<Text, _>(&self.name)
            .get_result::<Found>(conn)
            .map_err(failed)?;
            if owner.found {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{} owns {}; a runtime role must own none of zt's tables: apply migrations as another role",
                        self.name, privilege.object
                    ),
                ));
            }
            granted.push(format!(
                "{} {}: {}",
                privilege.kind, privilege.object, privilege.privileges
            ));
        }
        conn.transaction(|conn| conn.batch_execute(&self.sql(sets)))
            .map_err(failed)?;
        Ok(granted)
    }
}

/// What every runtime role needs, then each set's list.
fn privileges<'a>(sets: &'a [&MigrationSet]) -> impl Iterator<Item = &'a RuntimePrivilege> {
    const BOOKKEEPING: RuntimePrivilege = RuntimePrivilege {
        kind: "TABLE",
        object: MIGRATIONS_TABLE,
        privileges: "SELECT",
    };
    std::iter::once(&BOOKKEEPING).chain(sets.iter().flat_map(|set| set.runtime_privileges.iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_identifiers() {
        for good in ["app", "zt_runtime", "a1", &"r".repeat(63)] {
            assert!(RuntimeRole::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "App",
            "1app",
            "pg_monitor",
            "a-b",
            "a b",
            "a\"; DROP",
            &"r".repeat(64),
            "é",
        ] {
            let error = RuntimeRole::new(bad).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn the_script_creates_the_role_and_grants_only_what_is_listed() {
        static SET: MigrationSet = MigrationSet {
            name: "test",
            postgres: &crate::EmbeddedMigrations::new(&[]),
            sqlite: &crate::EmbeddedMigrations::new(&[]),
            runtime_privileges: &[RuntimePrivilege {
                kind: "TABLE",
                object: "audit_logs",
                privileges: "SELECT, INSERT",
            }],
        };
        let sql = RuntimeRole::new("app_rt").unwrap().sql(&[&SET]);
        assert!(sql.contains("CREATE ROLE app_rt NOLOGIN NOSUPERUSER"), "{sql}");
        assert!(sql.contains("REVOKE ALL ON TABLE audit_logs FROM app_rt;"), "{sql}");
        assert!(
            sql.contains("GRANT SELECT, INSERT ON TABLE audit_logs TO app_rt;"),
            "{sql}"
        );
        assert!(
            sql.contains("GRANT SELECT ON TABLE __zt_schema_migrations TO app_rt;"),
            "{sql}"
        );
        assert!(
            !sql.contains("UPDATE ON TABLE audit_logs") && !sql.contains("DELETE"),
            "{sql}"
        );
    }
}
