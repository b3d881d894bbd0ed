//! Diesel schemas of the reference tables, one module per backend, matching
//! `migrations/<backend>/*_create_zt_users_and_session_revocations`.

/// PostgreSQL.
#[cfg(feature = "postgres")]
pub(crate) mod pg {
    diesel::table! {
        zt_users (id) {
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
        zt_session_revocations (session_hash) {
            session_hash -> Bytea,
            user_id -> Varchar,
            revoked_at -> Timestamptz,
        }
    }

    diesel::table! {
        zt_user_revocations (user_id) {
            user_id -> Varchar,
            revoked_before -> Timestamptz,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(zt_users, zt_session_revocations, zt_user_revocations);
}

/// SQLite.
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    diesel::table! {
        zt_users (id) {
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
        zt_session_revocations (session_hash) {
            session_hash -> Binary,
            user_id -> Text,
            revoked_at -> Text,
        }
    }

    diesel::table! {
        zt_user_revocations (user_id) {
            user_id -> Text,
            revoked_before -> Text,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(zt_users, zt_session_revocations, zt_user_revocations);
}
