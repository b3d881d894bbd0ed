//! zt step 1: the audit chain's key. It comes from `ZT_AUDIT_KEY`, or from a
//! key file in the app's data directory, created once with mode 0600 and
//! read on every later run: a key generated afresh on each run could not
//! verify the rows of the runs before.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zt_audit::ChainKey;

use super::app::AppError;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "audit.key";

/// Where the key came from, for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `ZT_AUDIT_KEY` variable.
    Env,
    /// A key file created by this run.
    Created(String),
    /// A key file from an earlier run, and its permission bits.
    Loaded(String, u32),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env => write!(f, "from {}", zt_audit::KEY_ENV),
            Self::Created(path) => write!(f, "created {path} (mode 0600)"),
            Self::Loaded(path, mode) => write!(f, "loaded from {path} (mode {mode:04o})"),
        }
    }
}

/// The chain key: `ZT_AUDIT_KEY` if set, otherwise `data_dir/audit.key`,
/// created on the first run. A key file that others can read is refused.
pub fn load_or_create(data_dir: &Path) -> Result<(ChainKey, KeySource), AppError> {
    if std::env::var_os(zt_audit::KEY_ENV).is_some() {
        return Ok((ChainKey::from_env()?, KeySource::Env));
    }
    let path = data_dir.join(KEY_FILE);
    let shown = path.display().to_string();
    if path.exists() {
        let (key, mode) = read(&path)?;
        return Ok((key, KeySource::Loaded(shown, mode)));
    }
    // Written to a private temporary file, then linked into place: a
    // concurrent first run either wins the link or reads the winner's key.
    let key = ChainKey::generate()?;
    let temporary = data_dir.join(format!(".{KEY_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    writeln!(file, "{}", key.to_hex())?;
    file.sync_all()?;
    drop(file);
    let linked = std::fs::hard_link(&temporary, &path);
    std::fs::remove_file(&temporary)?;
    match linked {
        Ok(()) => Ok((key, KeySource::Created(shown))),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let (key, mode) = read(&path)?;
            Ok((key, KeySource::Loaded(shown, mode)))
        }
        Err(error) => Err(error.into()),
    }
}

/// Reads a key file and its permission bits, refusing one that its group or
/// others can read.
fn read(path: &Path) -> Result<(ChainKey, u32), AppError> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AppError::Setup(format!(
            "the key file {} has mode {mode:o}; only its owner may read it (chmod 600)",
            path.display()
        )));
    }
    Ok((ChainKey::from_file(path)?, mode))
}
