//! The example app's tables. One schema serves both backends: the column
//! types are ones that SQLite and PostgreSQL share.

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
