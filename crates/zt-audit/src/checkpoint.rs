//! Signed checkpoints: a small statement about the chain, signed with
//! Ed25519 and kept outside the database.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use zt_types::Timestamp;

use crate::error::{Error, ErrorKind};

/// The current checkpoint format.
pub const CHECKPOINT_VERSION: u8 = 1;

const DOMAIN: &[u8] = b"zt-audit-checkpoint\0";

/// What a checkpoint states: at `created_at`, the chain held `row_count`
/// rows, its last position was `seq` and that row's MAC was `last_mac`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format version.
    pub version: u8,
    /// The last chain position covered.
    pub seq: i64,
    /// The MAC of the row at `seq`.
    #[serde(with = "hex_mac")]
    pub last_mac: [u8; 32],
    /// How many rows the chain held.
    pub row_count: u64,
    /// When the checkpoint was taken.
    pub created_at: Timestamp,
    /// The id of the chain key in use, see `ChainKey::id`.
    pub chain_key_id: String,
}

impl Checkpoint {
    /// The bytes that are signed: a domain tag, then each field in order,
    /// integers big-endian, the key id length-prefixed.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(DOMAIN.len() + 1 + 8 + 32 + 8 + 8 + 4 + self.chain_key_id.len());
        bytes.extend_from_slice(DOMAIN);
        bytes.push(self.version);
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.last_mac);
        bytes.extend_from_slice(&self.row_count.to_be_bytes());
        bytes.extend_from_slice(&self.created_at.unix_micros().to_be_bytes());
        let id_len = u32::try_from(self.chain_key_id.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&id_len.to_be_bytes());
        bytes.extend_from_slice(self.chain_key_id.as_bytes());
        bytes
    }

    /// Signs the checkpoint.
    pub fn sign(self, key: &SigningKey) -> SignedCheckpoint {
        let signature = key.sign(&self.signed_bytes());
        SignedCheckpoint {
            checkpoint: self,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// A checkpoint with its signature: the JSON file an investigator keeps
/// outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// The statement.
    pub checkpoint: Checkpoint,
    /// The signer's public key, hex, for reference only: verification uses
    /// the public key the investigator trusts, not this one.
    pub public_key: String,
    /// The Ed25519 signature, hex.
    pub signature: String,
}

impl SignedCheckpoint {
    /// Checks the signature with `trusted`; returns the statement if it holds.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<&Checkpoint, Error> {
        let bad = |why: &str| Error::new(ErrorKind::Checkpoint, format!("checkpoint signature is invalid: {why}"));
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| bad("not 64 hex bytes"))?;
        trusted
            .verify(&self.checkpoint.signed_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| bad("it does not verify with the trusted public key"))?;
        Ok(&self.checkpoint)
    }

    /// The JSON file content.
    pub fn to_json(&self) -> String {
        // Plain strings and integers always serialize.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a checkpoint file.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text)
            .map_err(|e| Error::new(ErrorKind::Checkpoint, format!("malformed checkpoint file: {e}")))
    }
}

mod hex_mac {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(mac: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(mac))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(&text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("expected 32 hex bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            seq: 10,
            last_mac: [9; 32],
            row_count: 10,
            created_at: Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap(),
            chain_key_id: "abcd".to_owned(),
        }
    }

    #[test]
    fn signature_verifies_only_with_the_signer_and_the_same_statement() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let signed = checkpoint().sign(&key);
        let parsed = SignedCheckpoint::from_json(&signed.to_json()).unwrap();
        assert_eq!(parsed.verify(&key.verifying_key()).unwrap().seq, 10);

        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(parsed.verify(&other.verifying_key()).is_err());

        let mut forged = parsed.clone();
        forged.checkpoint.seq = 5;
        assert_eq!(
            forged.verify(&key.verifying_key()).unwrap_err().kind(),
            ErrorKind::Checkpoint
        );
    }
}
