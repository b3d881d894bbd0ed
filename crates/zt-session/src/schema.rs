//! Diesel schemas of the reference tables, one module per backend, matching
//! `migrations/<backend>/*_create_zt_users_and_session_revocations`,
//! `*_add_zt_users_valid_after` and the registry's `*_create_zt_sessions`.

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
            valid_after -> Timestamptz,
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

    diesel::table! {
        zt_sessions (session_hash) {
            session_hash -> Bytea,
            user_id -> Varchar,
            created_at -> Timestamptz,
            last_seen_at -> Timestamptz,
            created_ip -> Nullable<Varchar>,
            created_user_agent -> Nullable<Varchar>,
            last_ip -> Nullable<Varchar>,
            last_user_agent -> Nullable<Varchar>,
            client_changes -> Int8,
            client_changed_at -> Nullable<Timestamptz>,
            revoked_at -> Nullable<Timestamptz>,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(zt_users, zt_session_revocations, zt_user_revocations, zt_sessions);
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
            valid_after -> Text,
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

    diesel::table! {
        zt_sessions (session_hash) {
            session_hash -> Binary,
            user_id -> Text,
            created_at -> Text,
            last_seen_at -> Text,
            created_ip -> Nullable<Text>,
            created_user_agent -> Nullable<Text>,
            last_ip -> Nullable<Text>,
            last_user_agent -> Nullable<Text>,
            client_changes -> BigInt,
            client_changed_at -> Nullable<Text>,
            revoked_at -> Nullable<Text>,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(zt_users, zt_session_revocations, zt_user_revocations, zt_sessions);
}
