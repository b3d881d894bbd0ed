//! The example app's tables. One schema serves both backends: the column
//! types are ones that SQLite and PostgreSQL share. The creation times are
//! left out: each backend stores them in its own type, the database fills
//! them in, and the app never reads them.
//!
//! schema check, not declared: projects.created_at newsletter_subscribers.subscribed_at

diesel::table! {
    projects (id) {
        id -> BigInt,
        owner_id -> Text,
        name -> Text,
    }
}

diesel::table! {
    newsletter_subscribers (email) {
        email -> Text,
    }
}
