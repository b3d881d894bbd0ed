//! No-leak property tests: internal detail never reaches the client, and all of
//! it reaches the server log.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use proptest::prelude::*;
use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, Sanitizer};
use zt_types::neutralize;

/// One piece of internal detail of the kinds that leak in real systems.
fn internal_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        ("tbl_[a-z]{3,10}", 1u32..99_999).prop_map(|(table, id)| format!("SELECT * FROM {table} WHERE id = {id}")),
        "tbl_[a-z]{3,10}".prop_map(|table| format!("duplicate key value violates unique constraint \"{table}_pkey\"")),
        ("[a-z]{3,8}", "[a-z]{3,8}").prop_map(|(dir, file)| format!("/var/lib/{dir}/{file}.db")),
        ("[a-z]{3,8}", "[A-Za-z0-9]{6,12}", 1024u16..65_000)
            .prop_map(|(user, pass, port)| format!("postgres://{user}:{pass}@db-{user}.internal:{port}/prod")),
        prop::sample::select(vec![
            "PostgreSQL 15.4",
            "SQLite 3.40.1",
            "diesel::result::Error",
            "libpq",
            "r2d2 pool"
        ])
        .prop_map(str::to_owned),
        ("[a-z_]{3,12}", 1u32..500, 1u32..80)
            .prop_map(|(func, line, col)| format!("panicked at src/{func}.rs:{line}:{col}\n   0: zt::{func}::h1234")),
        "sk_live_[A-Za-z0-9]{16}".prop_map(|secret| format!("api key {secret} rejected")),
        "[A-Za-z0-9]{10,20}".prop_map(|token| format!("Authorization: Bearer eyJ{token}")),
        ("[a-z]{4,10}", "[ -~]{0,20}").prop_map(|(word, tail)| format!("\r\nERROR forged {word}{tail}")),
    ]
}

/// The internal error, wrapped in each way an application produces one.
fn internal_error(fragments: &[String], shape: u8) -> Box<dyn std::error::Error + Send + Sync> {
    let message = fragments.join(" | ");
    match shape % 4 {
        0 => Box::new(CodedError::new(ErrorCode::DbUnavailable).with_message(message)),
        1 => Box::new(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new(message),
        )),
        2 => Box::new(CodedError::new(ErrorCode::Internal).with_source(std::io::Error::other(message))),
        _ => Box::new(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(message),
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn internal_detail_stays_on_the_server(
        fragments in prop::collection::vec(internal_fragment(), 1..4),
        shape in any::<u8>(),
        expose_code in any::<bool>(),
    ) {
        let error = internal_error(&fragments, shape);
        let sanitizer = Sanitizer::new().expose_code(expose_code);
        let (problem, log) = support::capture(|| sanitizer.sanitize(error.as_ref()));
        let body = problem.to_json();

        for fragment in &fragments {
            prop_assert!(!body.contains(fragment.as_str()), "client body leaked {fragment:?}: {body}");
            for word in fragment.split(|c: char| c.is_whitespace() || c == '"').filter(|w| w.len() >= 6) {
                prop_assert!(!body.contains(word), "client body leaked {word:?}: {body}");
            }
            let logged = neutralize(fragment);
            prop_assert!(log.contains(logged.as_ref()), "server log lost {fragment:?}: {log}");
        }
        prop_assert!(log.contains(&problem.reference().to_string()));
        prop_assert!(log.contains(problem.code().reason()));
        // One event, one line: forged line breaks were neutralized.
        prop_assert_eq!(log.trim_end().lines().count(), 1, "{}", log);
        prop_assert_eq!(body.contains("\"code\""), expose_code);
    }
}
