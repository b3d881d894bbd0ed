//! The schema check: every hand-written diesel `schema.rs` matches the
//! tables that the migrations create, on each backend. A column added to a
//! migration and forgotten in `schema.rs` (or the reverse, or a type or
//! nullability that differs) fails here, naming the table and column.
//! `cargo xtask codegen --check` runs it, and so does every `cargo xtask test`.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use diesel::RunQueryDsl;
use zt_db::{AnyConnection, AsConnection, Pool, PoolConfig};
use zt_testkit::{Backend, TestDatabase};

/// One column as a `table!` declares it or the database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    /// The diesel type without `Nullable<…>`, or the database's own type name.
    kind: String,
    nullable: bool,
}

type Tables = BTreeMap<String, BTreeMap<String, Column>>;

/// The `table!` blocks of `source` for `backend`: the module of that backend
/// (`mod pg` / `mod sqlite`), or every block when the file has no such modules.
fn declared(source: &str, backend: Backend) -> Tables {
    let module = match backend {
        Backend::Sqlite => "mod sqlite {",
        Backend::Postgres => "mod pg {",
    };
    let text = match source.find(module) {
        Some(start) => {
            // Up to the next backend module, if any.
            let rest = &source[start..];
            let end = rest[1..].find("pub(crate) mod ").map_or(rest.len(), |end| end + 1);
            &rest[..end]
        }
        None => source,
    };
    let mut tables = Tables::new();
    for block in text.split("diesel::table! {").skip(1) {
        let header = block.trim_start();
        let name: String = header
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let body_start = header.find('{').expect("a table body") + 1;
        let body = &header[body_start..header.find('}').expect("the end of a table body")];
        let columns = body
            .split(',')
            .filter_map(|line| {
                let (column, kind) = line.trim().split_once("->")?;
                let kind = kind.trim();
                let (kind, nullable) = match kind.strip_prefix("Nullable<") {
                    Some(inner) => (inner.trim_end_matches('>'), true),
                    None => (kind, false),
                };
                Some((
                    column.trim().to_owned(),
                    Column {
                        kind: kind.to_owned(),
                        nullable,
                    },
                ))
            })
            .collect();
        tables.insert(name, columns);
    }
    tables
}

/// What the migrated database has, for the tables named.
fn actual(pool: &Pool, tables: &[&str]) -> Tables {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        nullable: bool,
    }
    let mut conn = pool.get().unwrap();
    let mut out = Tables::new();
    for table in tables {
        let rows: Vec<Row> = match conn.as_connection() {
            AnyConnection::Sqlite(conn) => diesel::sql_query(format!(
                "SELECT name, upper(type) AS kind, (\"notnull\" = 0 AND pk = 0) AS nullable FROM pragma_table_info('{table}')"
            ))
            .load(conn)
            .unwrap(),
            AnyConnection::Postgres(conn) => diesel::sql_query(
                "SELECT column_name::text AS name, data_type::text AS kind, is_nullable = 'YES' AS nullable \
                 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind::<diesel::sql_types::Text, _>(*table)
            .load(conn)
            .unwrap(),
            other => panic!("unexpected backend {other:?}"),
        };
        out.insert(
            (*table).to_owned(),
            rows.into_iter()
                .map(|row| {
                    (
                        row.name,
                        Column {
                            kind: row.kind,
                            nullable: row.nullable,
                        },
                    )
                })
                .collect(),
        );
    }
    out
}

/// Whether diesel type `declared` reads and writes the database type `stored`.
fn compatible(backend: Backend, declared: &str, stored: &str) -> bool {
    let accepted: &[&str] = match (backend, stored) {
        (Backend::Postgres, "bigint") => &["Int8", "BigInt"],
        (Backend::Postgres, "smallint") => &["Int2", "SmallInt"],
        (Backend::Postgres, "integer") => &["Int4", "Integer"],
        (Backend::Postgres, "character varying") => &["Varchar", "Text"],
        (Backend::Postgres, "text") => &["Text", "Varchar"],
        (Backend::Postgres, "timestamp with time zone") => &["Timestamptz"],
        (Backend::Postgres, "uuid") => &["Uuid"],
        (Backend::Postgres, "jsonb") => &["Jsonb"],
        (Backend::Postgres, "inet") => &["Inet"],
        (Backend::Postgres, "bytea") => &["Bytea", "Binary"],
        (Backend::Postgres, "boolean") => &["Bool"],
        // SQLite stores an integer of any width; diesel picks the Rust width.
        (Backend::Sqlite, "INTEGER") => &["BigInt", "Integer", "SmallInt", "Bool"],
        (Backend::Sqlite, "TEXT") => &["Text"],
        (Backend::Sqlite, "BLOB") => &["Binary"],
        _ => &[],
    };
    accepted.contains(&declared)
}

fn schemas_match_the_migrations(db: &TestDatabase) {
    let pool = Pool::connect_with(&db.url().parse().unwrap(), &PoolConfig::new().max_size(2)).unwrap();
    for set in [
        &zt_audit::MIGRATIONS,
        &zt_session::MIGRATIONS,
        &zt_session::REGISTRY_MIGRATIONS,
        &zt_examples::APP_MIGRATIONS,
    ] {
        pool.run_migrations(set).unwrap();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut problems = Vec::new();
    for file in [
        "crates/zt-audit/src/schema.rs",
        "crates/zt-session/src/schema.rs",
        "examples/src/schema.rs",
    ] {
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        let declared = declared(&source, db.backend());
        assert!(!declared.is_empty(), "{file}: no table! found");
        let names: Vec<&str> = declared.keys().map(String::as_str).collect();
        let actual = actual(&pool, &names);
        for (table, columns) in &declared {
            let stored = &actual[table];
            if stored.is_empty() {
                problems.push(format!("{file}: table {table} is not created by any migration"));
                continue;
            }
            for (name, column) in columns {
                match stored.get(name) {
                    None => problems.push(format!("{file}: {table}.{name} is not in the migrated table")),
                    Some(real) if !compatible(db.backend(), &column.kind, &real.kind) => problems.push(format!(
                        "{file}: {table}.{name} is declared {} but stored as {}",
                        column.kind, real.kind
                    )),
                    Some(real) if real.nullable != column.nullable => problems.push(format!(
                        "{file}: {table}.{name} is declared {} but the column is {}",
                        if column.nullable { "Nullable" } else { "not null" },
                        if real.nullable { "nullable" } else { "NOT NULL" }
                    )),
                    Some(_) => {}
                }
            }
            // A file may leave columns out on purpose, saying so in a line
            // `schema check, not declared: table.column ...`.
            let left_out: Vec<&str> = source
                .lines()
                .filter_map(|line| line.split_once("schema check, not declared:"))
                .flat_map(|(_, list)| list.split_whitespace())
                .collect();
            for name in stored
                .keys()
                .filter(|name| !columns.contains_key(*name) && !left_out.contains(&format!("{table}.{name}").as_str()))
            {
                problems.push(format!(
                    "{file}: {table}.{name} is migrated but missing from the table! block"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "schema.rs out of date:\n{}", problems.join("\n"));
}

#[test]
fn the_declaration_parser_reads_table_blocks() {
    let source = "pub(crate) mod pg {\n diesel::table! {\n t (id) {\n id -> Int8,\n note -> Nullable<Text>,\n }\n }\n}\n\
                  pub(crate) mod sqlite {\n diesel::table! {\n t (id) {\n id -> BigInt,\n }\n }\n}\n";
    let pg = declared(source, Backend::Postgres);
    assert_eq!(
        pg["t"]["note"],
        Column {
            kind: "Text".into(),
            nullable: true
        }
    );
    assert_eq!(pg["t"].len(), 2);
    assert_eq!(declared(source, Backend::Sqlite)["t"].len(), 1);
}

zt_testkit::backend_tests!(always: schemas_match_the_migrations);
