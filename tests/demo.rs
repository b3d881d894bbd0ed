//! The README's main command: the demo tells its whole story and exits 0, on
//! both backends, and a second run on the same database works too.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use zt_examples::demo::{ServerLog, run};
use zt_testkit::TestDatabase;

fn the_demo_tells_its_story_twice(db: &TestDatabase) {
    for round in 0..2 {
        let log = ServerLog::default();
        let mut out = Vec::new();
        let result =
            tracing::subscriber::with_default(log.subscriber(), || run(db.url(), &zt_e2e::key(), &mut out, &log));
        result.unwrap_or_else(|e| panic!("round {round}: {e}\n{}", String::from_utf8_lossy(&out)));
        let story = String::from_utf8(out).unwrap();
        for expected in [
            "201 Created: project",
            "SESSION_ROLE_CHANGED",
            "AUTH_REAUTHENTICATION_REQUIRED",
            "HTTP 409",
            "the server logged:",
            "HTTP 503",
            "ALERT firing: rule database-unavailable",
            "verification: OK",
        ] {
            assert!(
                story.contains(expected),
                "round {round}: missing {expected:?}:\n{story}"
            );
        }
        // What the server logged names the real cause; the client's problem does not.
        let duplicate = [
            "UNIQUE constraint failed: newsletter_subscribers.email",
            "duplicate key value violates unique constraint",
        ];
        assert!(
            duplicate.iter().any(|cause| story.contains(cause)),
            "round {round}: the cause is not shown:\n{story}"
        );
        for line in story.lines().filter(|line| line.trim_start().starts_with("{\"type\"")) {
            assert!(
                !line.contains("newsletter") && !line.contains("UNIQUE") && !line.contains("SESSION_"),
                "{line}"
            );
        }
    }
}

zt_testkit::backend_tests!(always: the_demo_tells_its_story_twice);
