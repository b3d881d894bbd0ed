//! Diesel schemas of the audit tables, one module per backend, matching
//! `migrations/<backend>/*_create_audit_logs`, `*_audit_chains` and
//! `*_audit_retention`.

/// PostgreSQL.
#[cfg(feature = "postgres")]
pub(crate) mod pg {
    diesel::table! {
        audit_logs (id) {
            id -> Int8,
            event_id -> Uuid,
            created_at -> Timestamptz,
            actor_kind -> Varchar,
            user_id -> Nullable<Varchar>,
            user_email -> Nullable<Varchar>,
            action -> Varchar,
            resource -> Varchar,
            resource_id -> Nullable<Varchar>,
            metadata -> Jsonb,
            client_ip -> Nullable<Inet>,
            peer_ip -> Nullable<Inet>,
            user_agent -> Nullable<Varchar>,
            status -> Varchar,
            error_code -> Nullable<Varchar>,
            request_id -> Nullable<Varchar>,
            chain_version -> Int2,
            prev_mac -> Bytea,
            mac -> Bytea,
            chain_id -> Int2,
            chain_seq -> Int8,
        }
    }

    diesel::table! {
        audit_chain_head (id) {
            id -> Int2,
            seq -> Int8,
            mac -> Bytea,
        }
    }

    diesel::table! {
        audit_prunes (chain_id, upto_seq) {
            chain_id -> Int2,
            upto_seq -> Int8,
            upto_mac -> Bytea,
            pruned_at -> Timestamptz,
            tag -> Bytea,
        }
    }

    diesel::table! {
        audit_erasures (chain_id, chain_seq) {
            chain_id -> Int2,
            chain_seq -> Int8,
            commitment -> Bytea,
            erased_at -> Timestamptz,
        }
    }
}

/// SQLite.
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    diesel::table! {
        audit_logs (id) {
            id -> BigInt,
            event_id -> Text,
            created_at -> Text,
            actor_kind -> Text,
            user_id -> Nullable<Text>,
            user_email -> Nullable<Text>,
            action -> Text,
            resource -> Text,
            resource_id -> Nullable<Text>,
            metadata -> Text,
            client_ip -> Nullable<Text>,
            client_ip_bin -> Nullable<Binary>,
            peer_ip -> Nullable<Text>,
            user_agent -> Nullable<Text>,
            status -> Text,
            error_code -> Nullable<Text>,
            request_id -> Nullable<Text>,
            chain_version -> SmallInt,
            prev_mac -> Binary,
            mac -> Binary,
            chain_id -> SmallInt,
            chain_seq -> BigInt,
        }
    }

    diesel::table! {
        audit_chain_head (id) {
            id -> BigInt,
            seq -> BigInt,
            mac -> Binary,
        }
    }

    diesel::table! {
        audit_prunes (chain_id, upto_seq) {
            chain_id -> SmallInt,
            upto_seq -> BigInt,
            upto_mac -> Binary,
            pruned_at -> Text,
            tag -> Binary,
        }
    }

    diesel::table! {
        audit_erasures (chain_id, chain_seq) {
            chain_id -> SmallInt,
            chain_seq -> BigInt,
            commitment -> Binary,
            erased_at -> Text,
        }
    }
}
