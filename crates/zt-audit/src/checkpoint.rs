//! Signed checkpoints: a small statement about the chain, signed with
//! Ed25519 and kept outside the database.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use zt_types::Timestamp;

use crate::error::{Error, ErrorKind};

/// The current checkpoint format: 2, one head per chain. Version 1 files,
/// from before chains, state the head of chain 1 in `seq` and `last_mac`,
/// and still verify.
pub const CHECKPOINT_VERSION: u8 = 2;

const DOMAIN: &[u8] = b"zt-audit-checkpoint\0";

/// The head of one chain as a checkpoint states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// The chain.
    pub chain: i16,
    /// Its last position covered.
    pub seq: i64,
    /// The MAC of the row at `seq`.
    #[serde(with = "hex_mac")]
    pub last_mac: [u8; 32],
}

/// What a checkpoint states: at `created_at`, the log held `row_count` rows,
/// and each chain's last position and MAC were those in `chains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format version.
    pub version: u8,
    /// Version 1 only: the last position of chain 1.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: i64,
    /// Version 1 only: the MAC of the row at `seq`.
    #[serde(default, with = "hex_mac", skip_serializing_if = "is_genesis")]
    pub last_mac: [u8; 32],
    /// Version 2: the head of every chain, by chain id.
    #[serde(default)]
    pub chains: Vec<ChainState>,
    /// How many rows the log held.
    pub row_count: u64,
    /// When the checkpoint was taken.
    pub created_at: Timestamp,
    /// The id of the chain key in use, see `ChainKey::id`.
    pub chain_key_id: String,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_genesis(mac: &[u8; 32]) -> bool {
    *mac == [0; 32]
}

impl Checkpoint {
    /// The head of every chain it states: `chains`, or for a version 1
    /// checkpoint, chain 1 at `seq`.
    pub fn heads(&self) -> Vec<ChainState> {
        if self.version == 1 {
            vec![ChainState {
                chain: 1,
                seq: self.seq,
                last_mac: self.last_mac,
            }]
        } else {
            self.chains.clone()
        }
    }

    /// The bytes that are signed: a domain tag, then each field in order,
    /// integers big-endian, the key id length-prefixed. Version 2 states the
    /// number of chains, then each chain's id, position and MAC, where
    /// version 1 stated `seq` and `last_mac`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(DOMAIN.len() + 64 + 42 * self.chains.len() + self.chain_key_id.len());
        bytes.extend_from_slice(DOMAIN);
        bytes.push(self.version);
        if self.version == 1 {
            bytes.extend_from_slice(&self.seq.to_be_bytes());
            bytes.extend_from_slice(&self.last_mac);
        } else {
            let count = u32::try_from(self.chains.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&count.to_be_bytes());
            for state in &self.chains {
                bytes.extend_from_slice(&state.chain.to_be_bytes());
                bytes.extend_from_slice(&state.seq.to_be_bytes());
                bytes.extend_from_slice(&state.last_mac);
            }
        }
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

pub(crate) mod hex_mac {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(mac: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(mac))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
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
            seq: 0,
            last_mac: [0; 32],
            chains: vec![
                ChainState {
                    chain: 1,
                    seq: 10,
                    last_mac: [9; 32],
                },
                ChainState {
                    chain: 2,
                    seq: 3,
                    last_mac: [8; 32],
                },
            ],
            row_count: 13,
            created_at: Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap(),
            chain_key_id: "abcd".to_owned(),
        }
    }

    #[test]
    fn signature_verifies_only_with_the_signer_and_the_same_statement() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let signed = checkpoint().sign(&key);
        let parsed = SignedCheckpoint::from_json(&signed.to_json()).unwrap();
        assert_eq!(parsed.verify(&key.verifying_key()).unwrap().heads()[1].seq, 3);

        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(parsed.verify(&other.verifying_key()).is_err());

        let mut forged = parsed.clone();
        forged.checkpoint.chains[1].seq = 2;
        assert_eq!(
            forged.verify(&key.verifying_key()).unwrap_err().kind(),
            ErrorKind::Checkpoint
        );
        let mut dropped = parsed.clone();
        dropped.checkpoint.chains.pop();
        assert!(
            dropped.verify(&key.verifying_key()).is_err(),
            "a chain cannot be left out"
        );
    }

    #[test]
    fn version_1_files_still_verify() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let v1 = Checkpoint {
            version: 1,
            seq: 10,
            last_mac: [9; 32],
            chains: Vec::new(),
            row_count: 10,
            created_at: Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap(),
            chain_key_id: "abcd".to_owned(),
        }
        .sign(&key);
        let json = v1.to_json();
        assert!(!json.contains("chains\": [{"), "{json}");
        let parsed = SignedCheckpoint::from_json(&json).unwrap();
        let statement = parsed.verify(&key.verifying_key()).unwrap();
        assert_eq!(
            statement.heads(),
            [ChainState {
                chain: 1,
                seq: 10,
                last_mac: [9; 32]
            }]
        );
    }
}
