//! Keys: the HMAC key of the chain, and the Ed25519 keys of checkpoints.
//! None of them is ever stored in the database.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};

/// The environment variable that holds the chain key.
pub const KEY_ENV: &str = "ZT_AUDIT_KEY";

/// The secret key of the hash chain: 32 to 64 bytes.
///
/// It comes from configuration or the environment, never from the database:
/// someone who can write the database but does not hold the key cannot forge
/// a row's MAC. Its text form is hex or base64. `Debug` shows only its id.
#[derive(Clone)]
pub struct ChainKey(Vec<u8>);

impl ChainKey {
    /// Wraps raw key bytes: 32 to 64 of them, not all the same (a key such
    /// as 32 zero bytes, a placeholder left in a configuration file, has no
    /// entropy, and anyone could forge its MACs).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if !(32..=64).contains(&bytes.len()) {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                format!("a chain key must be 32 to 64 bytes, not {}", bytes.len()),
            ));
        }
        if bytes.windows(2).all(|pair| pair[0] == pair[1]) {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                "a chain key must not be one byte repeated: it has no entropy; \
                 generate one with `zt audit keygen --chain-key FILE`",
            ));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Parses hex or standard base64 text, ignoring surrounding whitespace.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidKey, "a chain key must be hex or base64"))?;
        Self::from_bytes(&bytes)
    }

    /// Reads the key from [`KEY_ENV`].
    pub fn from_env() -> Result<Self, Error> {
        let text =
            std::env::var(KEY_ENV).map_err(|_| Error::new(ErrorKind::InvalidKey, format!("{KEY_ENV} is not set")))?;
        Self::parse(&text)
    }

    /// Reads the key from a file holding its text form. On Unix a file that
    /// its group or others can read is refused: the key would no longer be
    /// the secret that the chain's protection rests on.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        Self::parse(&read_secret_file(path, "chain")?)
    }

    /// Reads the key in `path`; on the very first start, when there is no
    /// such file, generates a key and writes it there first, readable by its
    /// owner only (mode 0600 on Unix), never replacing an existing file.
    /// Every later start reads the same key, so the log keeps verifying.
    ///
    /// Keep the file outside the database's reach and back it up: a lost
    /// key cannot be recovered, and the rows it wrote can then no longer be
    /// verified.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        use std::io::Write as _;
        if path.exists() {
            return Self::from_file(path);
        }
        let key = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options
            .open(path)
            .and_then(|mut file| writeln!(file, "{}", key.to_hex()).and_then(|()| file.sync_all()));
        match written {
            Ok(()) => Ok(key),
            // Another process created it first: use its key.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
            Err(error) => Err(Error::new(
                ErrorKind::InvalidKey,
                format!("cannot create key file {}", path.display()),
            )
            .with_source(error)),
        }
    }

    /// A fresh random 32-byte key.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)
            .map_err(|e| Error::new(ErrorKind::InvalidKey, format!("no randomness for a key: {e}")))?;
        Self::from_bytes(&bytes)
    }

    /// The key as lowercase hex, for writing to a key file.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// A short public id: the first 8 bytes of the key's SHA-256, in hex. It
    /// tells keys apart without revealing them.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(&self.0)[..8])
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainKey(id {})", self.id())
    }
}

/// Reads an Ed25519 signing key: 32 bytes as hex or base64 text, in a file
/// only its owner may read (on Unix).
pub fn signing_key_from_file(path: &Path) -> Result<SigningKey, Error> {
    let bytes = key_bytes(path, "signing", &read_secret_file(path, "signing")?)?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Reads an Ed25519 public key: 32 bytes as hex or base64 text.
pub fn verifying_key_from_file(path: &Path) -> Result<VerifyingKey, Error> {
    // A public key is no secret: anyone may read its file.
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("cannot read public key file {}: {e}", path.display()),
        )
    })?;
    let bytes = key_bytes(path, "public", &text)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("{} is not an Ed25519 public key: {e}", path.display()),
        )
    })
}

/// A fresh Ed25519 signing key.
pub fn generate_signing_key() -> Result<SigningKey, Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| Error::new(ErrorKind::InvalidKey, format!("no randomness for a key: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a file that holds a secret, refusing one that others can read.
fn read_secret_file(path: &Path, what: &str) -> Result<String, Error> {
    let unreadable = |e: std::io::Error| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("cannot read {what} key file {}: {e}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().map_err(unreadable)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                format!(
                    "the {what} key file {} has mode {mode:03o}; only its owner may read it (chmod 600)",
                    path.display()
                ),
            ));
        }
    }
    std::io::read_to_string(file).map_err(unreadable)
}

/// The 32 key bytes in `text`, read from `path`: hex or base64.
fn key_bytes(path: &Path, what: &str, text: &str) -> Result<[u8; 32], Error> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidKey,
                format!("{what} key in {} must be hex or base64", path.display()),
            )
        })?;
    bytes.try_into().map_err(|_| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("{what} key in {} must be 32 bytes", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_forms_and_bounds() {
        let hex_key = "0001".repeat(16);
        assert!(ChainKey::parse(&hex_key).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode((0..48).collect::<Vec<u8>>());
        assert!(ChainKey::parse(&format!(" {b64}\n")).is_ok());
        assert_eq!(ChainKey::parse("abcd").unwrap_err().kind(), ErrorKind::InvalidKey);
        let key = ChainKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(&key.to_hex()));
        assert_eq!(ChainKey::parse(&key.to_hex()).unwrap().id(), key.id());
    }

    #[test]
    fn keys_without_entropy_are_refused() {
        for byte in [0_u8, 0x5a, 0xff] {
            for len in [32, 48, 64] {
                let error = ChainKey::from_bytes(&vec![byte; len]).unwrap_err();
                assert_eq!(error.kind(), ErrorKind::InvalidKey);
                assert!(error.to_string().contains("no entropy"), "{error}");
            }
        }
        assert!(ChainKey::parse(&"00".repeat(32)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_files_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("zt-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.key");
        let _ = std::fs::remove_file(&path);
        let key = ChainKey::load_or_create(&path).unwrap();
        assert_eq!(ChainKey::from_file(&path).unwrap().id(), key.id());
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = ChainKey::from_file(&path).unwrap_err().to_string();
            assert!(error.contains("only its owner may read it"), "{error}");
            assert!(!error.contains(&key.to_hex()), "{error}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(signing_key_from_file(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
