//! Diesel schemas of the reference tables, one module per backend, matching
//! `migrations/<backend>/*_create_users_and_session_revocations`.

/// PostgreSQL.
#[cfg(feature = "postgres")]
pub(crate) mod pg {
    diesel::table! {
        users (id) {
            id -> Varchar,
            email -> Nullable<Varchar>,
            role -> Varchar,
            session_version -> Int8,
            disabled -> Bool,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
            deleted_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        session_revocations (session_hash) {
            session_hash -> Bytea,
            user_id -> Varchar,
            revoked_at -> Timestamptz,
        }
    }

    diesel::joinable!(session_revocations -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(users, session_revocations);
}

/// SQLite.
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    diesel::table! {
        users (id) {
            id -> Text,
            email -> Nullable<Text>,
            role -> Text,
            session_version -> BigInt,
            disabled -> Bool,
            created_at -> Text,
            updated_at -> Text,
            deleted_at -> Nullable<Text>,
        }
    }

    diesel::table! {
        session_revocations (session_hash) {
            session_hash -> Binary,
            user_id -> Text,
            revoked_at -> Text,
        }
    }

    diesel::joinable!(session_revocations -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(users, session_revocations);
}
