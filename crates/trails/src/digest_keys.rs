//! The RSA key pairs that sign digest files: one current key per region, rotated on a
//! configurable period, old public keys kept so old digests stay verifiable.
//!
//! Everything lives in `DATA_DIR/digest-keys/keys.json` (directory 0700, file 0600): for
//! each key its region, fingerprint, validity window and PKCS#1 DER key pair. Old
//! private keys are kept too, because a digest planned before a rotation and redone after
//! a crash must be signed again with the same key to get the same bytes.
//!
//! A key is valid over `[valid_from_ms, valid_until_ms)`. A digest is signed with the key
//! of its region whose window holds the digest's end time; when none does because the
//! newest key has expired, a new key is generated first. So every digest's end time lies
//! in its key's window, which is what `ListPublicKeys` over `[start, end + 2 h]` (the aws
//! CLI's question) needs to return it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::TrailsError;

const KEYS_FILE_NAME: &str = "keys.json";
/// CloudTrail's keys are 2048-bit (ListPublicKeys samples).
pub const KEY_BITS: usize = 2048;
/// CloudTrail's documented samples have 30-day validity windows.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A public key as ListPublicKeys reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    pub region: String,
    pub fingerprint: String,
    /// PKCS#1 RSAPublicKey, DER.
    pub public_der: Vec<u8>,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeysFile {
    keys: Vec<StoredKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    region: String,
    fingerprint: String,
    valid_from_ms: i64,
    valid_until_ms: i64,
    /// Base64 of the PKCS#1 RSAPublicKey DER.
    public_der: String,
    /// Base64 of the PKCS#1 RSAPrivateKey DER.
    private_der: String,
}

/// The digest signing keys of this server. Share it behind an `Arc`; methods block
/// (file I/O, and key generation takes a fraction of a second).
#[derive(Debug)]
pub struct DigestKeys {
    dir: PathBuf,
    rotation: Duration,
    file: Mutex<KeysFile>,
}

/// The fingerprint CloudTrail puts in `digestPublicKeyFingerprint` and ListPublicKeys:
/// an opaque 32-hex-character string. The first 16 bytes of the DER's SHA-256 keep the
/// shape without another hash crate.
pub fn fingerprint_of(public_der: &[u8]) -> String {
    let hash = Sha256::digest(public_der);
    hex::encode(&hash[..16])
}

impl DigestKeys {
    /// Opens (creating if needed) the key directory. Blocking.
    pub fn open(dir: &Path, rotation: Duration) -> Result<DigestKeys, TrailsError> {
        create_private_dir(dir)?;
        let path = dir.join(KEYS_FILE_NAME);
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| TrailsError::Corrupt {
                path: path.clone(),
                reason: error.to_string(),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => KeysFile::default(),
            Err(source) => return Err(TrailsError::Read { path, source }),
        };
        Ok(DigestKeys {
            dir: dir.to_owned(),
            rotation: rotation.max(Duration::from_secs(1)),
            file: Mutex::new(file),
        })
    }

    /// Signs `message` with SHA256withRSA (PKCS#1 v1.5) using the key of `region` valid
    /// at `at_ms`, generating (and persisting) one first when needed. Returns the
    /// fingerprint and the lower-case hex signature. Deterministic for a given key.
    pub fn sign(
        &self,
        region: &str,
        at_ms: i64,
        message: &[u8],
    ) -> Result<(String, String), TrailsError> {
        let fingerprint = self.key_for(region, at_ms)?;
        let signature = self.sign_with(&fingerprint, message)?;
        Ok((fingerprint, signature))
    }

    /// The fingerprint of the key that signs `region`'s digests ending at `at_ms`.
    pub fn key_for(&self, region: &str, at_ms: i64) -> Result<String, TrailsError> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let mut region_keys: Vec<&mut StoredKey> = file
            .keys
            .iter_mut()
            .filter(|key| key.region == region)
            .collect();
        region_keys.sort_by_key(|key| key.valid_from_ms);
        if let Some(key) = region_keys
            .iter()
            .find(|key| key.valid_from_ms <= at_ms && at_ms < key.valid_until_ms)
        {
            return Ok(key.fingerprint.clone());
        }
        let newest_until = region_keys.last().map(|key| key.valid_until_ms);
        if let (Some(first), Some(newest_until)) = (region_keys.first_mut(), newest_until)
            && at_ms < newest_until
        {
            // Before the oldest key (a clock that stepped back): widen that key's window
            // rather than mint a key that would overlap it.
            first.valid_from_ms = at_ms;
            let fingerprint = first.fingerprint.clone();
            self.persist(&file)?;
            return Ok(fingerprint);
        }
        let rotation_ms = i64::try_from(self.rotation.as_millis()).unwrap_or(i64::MAX);
        let generated = generate_key(region, at_ms, at_ms.saturating_add(rotation_ms))?;
        let fingerprint = generated.fingerprint.clone();
        file.keys.push(generated);
        self.persist(&file)?;
        tracing::info!(
            region,
            fingerprint = fingerprint.as_str(),
            "generated a digest signing key"
        );
        Ok(fingerprint)
    }

    /// Signs with a known key (a redone digest keeps its planned key).
    pub fn sign_with(&self, fingerprint: &str, message: &[u8]) -> Result<String, TrailsError> {
        let private_der = {
            let file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
            let key = file
                .keys
                .iter()
                .find(|key| key.fingerprint == fingerprint)
                .ok_or_else(|| {
                    self.corrupt(format!("no digest key with fingerprint {fingerprint}"))
                })?;
            BASE64
                .decode(&key.private_der)
                .map_err(|error| self.corrupt(error.to_string()))?
        };
        let private = rsa::PrivateKey::from_pkcs1_der(&private_der)
            .map_err(|error| self.corrupt(error.to_string()))?;
        let signing = SigningKey::<Sha256>::new(private);
        let signature = signing
            .try_sign(message)
            .map_err(|error| TrailsError::Task(format!("cannot sign a digest: {error}")))?;
        Ok(hex::encode(signature.to_vec()))
    }

    /// Every public key of `region` whose validity window overlaps `[start_ms, end_ms]`,
    /// oldest first.
    pub fn public_keys(&self, region: &str, start_ms: i64, end_ms: i64) -> Vec<PublicKeyInfo> {
        let file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<PublicKeyInfo> = file
            .keys
            .iter()
            .filter(|key| key.region == region)
            .filter(|key| key.valid_from_ms <= end_ms && start_ms < key.valid_until_ms)
            .filter_map(|key| {
                Some(PublicKeyInfo {
                    region: key.region.clone(),
                    fingerprint: key.fingerprint.clone(),
                    public_der: BASE64.decode(&key.public_der).ok()?,
                    valid_from_ms: key.valid_from_ms,
                    valid_until_ms: key.valid_until_ms,
                })
            })
            .collect();
        keys.sort_by_key(|key| key.valid_from_ms);
        keys
    }

    fn corrupt(&self, reason: String) -> TrailsError {
        TrailsError::Corrupt {
            path: self.dir.join(KEYS_FILE_NAME),
            reason,
        }
    }

    fn persist(&self, file: &KeysFile) -> Result<(), TrailsError> {
        let path = self.dir.join(KEYS_FILE_NAME);
        let bytes =
            serde_json::to_vec_pretty(file).map_err(|error| self.corrupt(error.to_string()))?;
        write_private_file(&path, &bytes).map_err(|source| TrailsError::Write { path, source })
    }
}

fn generate_key(region: &str, from_ms: i64, until_ms: i64) -> Result<StoredKey, TrailsError> {
    let generation_error =
        |error: String| TrailsError::Task(format!("cannot generate a digest key: {error}"));
    let private = rsa::PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
        .map_err(|error| generation_error(error.to_string()))?;
    let public_der = private
        .to_public_key()
        .to_pkcs1_der()
        .map_err(|error| generation_error(error.to_string()))?;
    let private_der = private
        .to_pkcs1_der()
        .map_err(|error| generation_error(error.to_string()))?;
    Ok(StoredKey {
        region: region.to_owned(),
        fingerprint: fingerprint_of(public_der.as_bytes()),
        valid_from_ms: from_ms,
        valid_until_ms: until_ms,
        public_der: BASE64.encode(public_der.as_bytes()),
        private_der: BASE64.encode(private_der.as_bytes()),
    })
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), TrailsError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let write_error = |source| TrailsError::Write {
        path: dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_error)?;
    // An existing directory keeps whatever mode it had; private keys need it closed.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(write_error)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), TrailsError> {
    std::fs::create_dir_all(dir).map_err(|source| TrailsError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Atomic, durable replace of a file only the owner may read (private keys).
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    opentrail_durable::sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_and_old_ones_stay_listed() -> Result<(), TrailsError> {
        let dir = tempfile::tempdir().map_err(|source| TrailsError::Write {
            path: PathBuf::from("tempdir"),
            source,
        })?;
        let keys = DigestKeys::open(dir.path(), Duration::from_secs(10))?;
        let first = keys.key_for("us-east-1", 1_000_000)?;
        assert_eq!(keys.key_for("us-east-1", 1_005_000)?, first);
        let second = keys.key_for("us-east-1", 1_010_000)?;
        assert_ne!(first, second);
        assert_ne!(keys.key_for("eu-west-1", 1_010_000)?, second);
        let listed = keys.public_keys("us-east-1", 0, 2_000_000);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].fingerprint, first);
        assert_eq!(keys.public_keys("us-east-1", 1_011_000, 1_012_000).len(), 1);
        // Reopened from disk, the same keys answer.
        let reopened = DigestKeys::open(dir.path(), Duration::from_secs(10))?;
        assert_eq!(reopened.key_for("us-east-1", 1_005_000)?, first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEYS_FILE_NAME))
                .map_err(|source| TrailsError::Read {
                    path: dir.path().to_owned(),
                    source,
                })?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }
}
