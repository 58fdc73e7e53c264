//! Access keys: who may call OpenTrail, with which role, for which account.
//!
//! SigV4 verification needs the secret itself (it recomputes the HMAC), so secrets cannot
//! be hashed. They are sealed with AES-256-GCM under a master key kept in
//! `DATA_DIR/master.key` (32 random bytes, mode 0600), and the access key id is the
//! associated data, so a sealed secret cannot be moved to another key's entry. Bearer
//! tokens are only ever compared, so only their SHA-256 is stored. The one plaintext copy
//! of a secret at rest is `DATA_DIR/credentials`, written once for the first admin key.
//!
//! The table lives in memory and is rewritten to `DATA_DIR/keys.json` (atomically, mode
//! 0600) on every change. Readers take a snapshot (`Arc`) under a short read lock, so
//! request authentication never waits for a key write's fsync.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64_URL};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use ring::aead;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::is_valid_account_id;
use opentrail_durable::{create_private_file_durably, write_private_atomically};

pub const KEYS_FILE_NAME: &str = "keys.json";
pub const MASTER_KEY_FILE_NAME: &str = "master.key";
pub const CREDENTIALS_FILE_NAME: &str = "credentials";

/// Distinguishes OpenTrail keys from real AWS ones (`AKIA…`) at a glance; clients accept
/// any id.
pub const ACCESS_KEY_ID_PREFIX: &str = "OTAK";
pub const ACCESS_KEY_ID_LEN: usize = 20;
/// The length of an AWS secret access key.
pub const SECRET_ACCESS_KEY_LEN: usize = 40;
/// Makes a leaked token recognisable to secret scanners and people.
pub const BEARER_TOKEN_PREFIX: &str = "otb_";

const KEYS_FILE_FORMAT_VERSION: u32 = 1;
const MASTER_KEY_LEN: usize = 32;
const BEARER_TOKEN_RANDOM_BYTES: usize = 32;
const UPPER_ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// What a key may do. Permission checks live with the routes; this is only the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including key management. An admin of the default account sees every
    /// account.
    Admin,
    /// Look up and query events.
    Read,
    /// Write events only.
    Ingest,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Read, Role::Ingest];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Read => "read",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A key's identity and status; never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub role: Role,
    pub account_id: String,
    pub created_at: jiff::Timestamp,
    pub revoked_at: Option<jiff::Timestamp>,
}

impl AccessKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A freshly created key: the only moment its secret and token are handed out.
#[derive(Debug, Clone)]
pub struct CreatedAccessKey {
    pub key: AccessKey,
    pub secret_access_key: String,
    /// Only `ingest` keys get one, for producers that cannot sign requests.
    pub bearer_token: Option<String>,
}

/// The shared, thread-safe key table. Cloning shares it.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<KeyStoreInner>,
}

struct KeyStoreInner {
    keys_file: PathBuf,
    cipher: SecretCipher,
    snapshot: RwLock<Arc<KeyTable>>,
    /// Serialises writers, so two changes never race on `keys.json`.
    write_lock: Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {detail}")]
    CorruptKeysFile { path: PathBuf, detail: String },
    #[error(
        "{master_key} is missing but {keys_file} exists, so the stored secrets cannot be \
         decrypted; restore master.key from backup, or move keys.json away to start with new keys"
    )]
    MasterKeyMissing {
        master_key: PathBuf,
        keys_file: PathBuf,
    },
    #[error("{path} must hold exactly {MASTER_KEY_LEN} bytes, found {found}")]
    MasterKeyWrongLength { path: PathBuf, found: usize },
    #[error(
        "the secret of {access_key_id} does not decrypt with {master_key}; \
         master.key does not belong to this keys.json"
    )]
    MasterKeyMismatch {
        access_key_id: String,
        master_key: PathBuf,
    },
    #[error("the operating system's random number generator failed: {0}")]
    RandomSource(String),
    #[error("invalid account id {0:?}: an account id is exactly 12 digits")]
    InvalidAccountId(String),
    #[error("no access key {0}")]
    NotFound(String),
}

impl KeyStore {
    /// Loads `DATA_DIR/keys.json` (or starts empty) and the master key, creating the master
    /// key on first start. Blocking: call it from `spawn_blocking` in async code.
    pub fn open(data_dir: &Path) -> Result<KeyStore, KeyStoreError> {
        let keys_file = data_dir.join(KEYS_FILE_NAME);
        let master_key_file = data_dir.join(MASTER_KEY_FILE_NAME);
        let keys_file_exists = keys_file
            .try_exists()
            .map_err(|source| io_error(&keys_file, source))?;
        let master_key = load_or_create_master_key(&master_key_file, &keys_file, keys_file_exists)?;
        let cipher = SecretCipher::new(&master_key, master_key_file);
        let table = if keys_file_exists {
            load_keys_file(&keys_file, &cipher)?
        } else {
            KeyTable::default()
        };
        Ok(KeyStore {
            inner: Arc::new(KeyStoreInner {
                keys_file,
                cipher,
                snapshot: RwLock::new(Arc::new(table)),
                write_lock: Mutex::new(()),
            }),
        })
    }

    /// Creates and persists a key. Blocking (fsync).
    pub fn create(&self, role: Role, account_id: &str) -> Result<CreatedAccessKey, KeyStoreError> {
        self.create_then(role, account_id, |_| Ok(()))
    }

    /// On first start (no keys at all), creates an admin key for `account_id` and writes
    /// its secret to `DATA_DIR/credentials` in the AWS shared-credentials format. Returns
    /// `None` when keys already exist. Blocking.
    pub fn create_first_admin_key_if_none(
        &self,
        account_id: &str,
        region: &str,
        credentials_file: &Path,
    ) -> Result<Option<CreatedAccessKey>, KeyStoreError> {
        if !self.is_empty() {
            return Ok(None);
        }
        // The credentials file is written before keys.json: a crash in between leaves no
        // keys, so the next start simply bootstraps again and overwrites the file. The
        // other order could leave an admin key nobody has the secret of.
        let created = self.create_then(Role::Admin, account_id, |created| {
            let contents = shared_credentials_file_contents(created, region);
            write_private_atomically(credentials_file, contents.as_bytes())
                .map_err(|source| io_error(credentials_file, source))
        })?;
        Ok(Some(created))
    }

    /// Every key, oldest first. Secrets are never part of the listing.
    pub fn list(&self) -> Vec<AccessKey> {
        let table = self.snapshot();
        let mut keys: Vec<AccessKey> = table
            .entries
            .values()
            .map(|entry| entry.key.clone())
            .collect();
        keys.sort_by(|left, right| {
            (left.created_at, &left.access_key_id).cmp(&(right.created_at, &right.access_key_id))
        });
        keys
    }

    pub fn get(&self, access_key_id: &str) -> Option<AccessKey> {
        self.snapshot()
            .entries
            .get(access_key_id)
            .map(|entry| entry.key.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot().entries.is_empty()
    }

    /// The secret SigV4 verification needs, for active keys only: a revoked key's
    /// signatures must not verify.
    pub fn secret_for_active_key(&self, access_key_id: &str) -> Option<String> {
        let table = self.snapshot();
        let entry = table.entries.get(access_key_id)?;
        entry
            .key
            .is_active()
            .then(|| entry.secret_access_key.clone())
    }

    /// The active key a bearer token belongs to.
    pub fn key_for_bearer_token(&self, bearer_token: &str) -> Option<AccessKey> {
        // Looking up by hash means no secret-dependent comparison of the token itself.
        let token_hash = sha256(bearer_token.as_bytes());
        let table = self.snapshot();
        let access_key_id = table.active_keys_by_token_hash.get(&token_hash)?;
        let entry = table.entries.get(access_key_id)?;
        entry.key.is_active().then(|| entry.key.clone())
    }

    /// Marks a key revoked (idempotent). Its signatures and token stop working at once.
    /// Blocking (fsync).
    pub fn revoke(&self, access_key_id: &str) -> Result<AccessKey, KeyStoreError> {
        let _writer = self.lock_writer();
        let current = self.snapshot();
        let Some(entry) = current.entries.get(access_key_id) else {
            return Err(KeyStoreError::NotFound(access_key_id.to_owned()));
        };
        if !entry.key.is_active() {
            return Ok(entry.key.clone());
        }
        let mut next = (*current).clone();
        let mut revoked_entry = entry.clone();
        revoked_entry.key.revoked_at = Some(jiff::Timestamp::now());
        let revoked_key = revoked_entry.key.clone();
        next.insert(revoked_entry);
        self.persist_and_publish(next)?;
        Ok(revoked_key)
    }

    fn create_then(
        &self,
        role: Role,
        account_id: &str,
        before_persist: impl FnOnce(&CreatedAccessKey) -> Result<(), KeyStoreError>,
    ) -> Result<CreatedAccessKey, KeyStoreError> {
        if !is_valid_account_id(account_id) {
            return Err(KeyStoreError::InvalidAccountId(account_id.to_owned()));
        }
        let _writer = self.lock_writer();
        let current = self.snapshot();
        let access_key_id = loop {
            // 36^16 ids make a collision practically impossible; the check keeps it certain.
            let candidate = generate_access_key_id()?;
            if !current.entries.contains_key(&candidate) {
                break candidate;
            }
        };
        let secret_access_key = random_string(BASE64_ALPHABET, SECRET_ACCESS_KEY_LEN)?;
        let bearer_token = match role {
            Role::Ingest => Some(generate_bearer_token()?),
            Role::Admin | Role::Read => None,
        };
        let created = CreatedAccessKey {
            key: AccessKey {
                access_key_id: access_key_id.clone(),
                role,
                account_id: account_id.to_owned(),
                created_at: jiff::Timestamp::now(),
                revoked_at: None,
            },
            secret_access_key: secret_access_key.clone(),
            bearer_token: bearer_token.clone(),
        };
        let entry = KeyEntry {
            key: created.key.clone(),
            secret_access_key_sealed: self.inner.cipher.seal(&access_key_id, &secret_access_key)?,
            secret_access_key,
            bearer_token_sha256: bearer_token
                .as_deref()
                .map(|token| sha256(token.as_bytes())),
        };
        before_persist(&created)?;
        let mut next = (*current).clone();
        next.insert(entry);
        self.persist_and_publish(next)?;
        Ok(created)
    }

    fn snapshot(&self) -> Arc<KeyTable> {
        // A poisoned lock only means a panic happened while the Arc was being swapped;
        // the Arc itself is always a whole table, so it is safe to keep using it.
        let guard = self
            .inner
            .snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `next` to disk first and only then makes it visible, so memory never runs
    /// ahead of what a restart would load.
    fn persist_and_publish(&self, next: KeyTable) -> Result<(), KeyStoreError> {
        let file = KeysFile {
            format_version: KEYS_FILE_FORMAT_VERSION,
            keys: next.entries.values().map(KeyEntry::to_stored).collect(),
        };
        let mut json =
            serde_json::to_vec_pretty(&file).map_err(|error| KeyStoreError::CorruptKeysFile {
                path: self.inner.keys_file.clone(),
                detail: format!("cannot serialise: {error}"),
            })?;
        json.push(b'\n');
        write_private_atomically(&self.inner.keys_file, &json)
            .map_err(|source| io_error(&self.inner.keys_file, source))?;
        let mut guard = self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Arc::new(next);
        Ok(())
    }
}

/// The text of an AWS shared-credentials file holding `created` as profile `default`.
pub fn shared_credentials_file_contents(created: &CreatedAccessKey, region: &str) -> String {
    format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\nregion = {}\n",
        created.key.access_key_id, created.secret_access_key, region
    )
}

#[derive(Debug, Clone, Default)]
struct KeyTable {
    entries: BTreeMap<String, KeyEntry>,
    active_keys_by_token_hash: HashMap<[u8; 32], String>,
}

impl KeyTable {
    fn insert(&mut self, entry: KeyEntry) {
        if let Some(token_hash) = entry.bearer_token_sha256 {
            if entry.key.is_active() {
                self.active_keys_by_token_hash
                    .insert(token_hash, entry.key.access_key_id.clone());
            } else {
                self.active_keys_by_token_hash.remove(&token_hash);
            }
        }
        self.entries.insert(entry.key.access_key_id.clone(), entry);
    }
}

#[derive(Debug, Clone)]
struct KeyEntry {
    key: AccessKey,
    /// Decrypted at load; memory is not "at rest".
    secret_access_key: String,
    /// Kept so that rewriting keys.json does not re-encrypt unchanged secrets.
    secret_access_key_sealed: String,
    bearer_token_sha256: Option<[u8; 32]>,
}

impl KeyEntry {
    fn to_stored(&self) -> StoredKey {
        StoredKey {
            access_key_id: self.key.access_key_id.clone(),
            role: self.key.role.as_str().to_owned(),
            account_id: self.key.account_id.clone(),
            created_at: self.key.created_at,
            revoked_at: self.key.revoked_at,
            secret_access_key_sealed: self.secret_access_key_sealed.clone(),
            bearer_token_sha256: self.bearer_token_sha256.map(hex::encode),
        }
    }
}

/// The on-disk format of keys.json. It is a promise to future versions, so it is kept
/// apart from the in-memory types and versioned.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeysFile {
    format_version: u32,
    keys: Vec<StoredKey>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredKey {
    access_key_id: String,
    role: String,
    account_id: String,
    created_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<jiff::Timestamp>,
    /// base64(nonce ‖ AES-256-GCM ciphertext ‖ tag), with the access key id as AAD.
    secret_access_key_sealed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bearer_token_sha256: Option<String>,
}

fn load_keys_file(path: &Path, cipher: &SecretCipher) -> Result<KeyTable, KeyStoreError> {
    let corrupt = |detail: String| KeyStoreError::CorruptKeysFile {
        path: path.to_owned(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    let file: KeysFile =
        serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))?;
    if file.format_version != KEYS_FILE_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is not supported (expected {KEYS_FILE_FORMAT_VERSION})",
            file.format_version
        )));
    }
    let mut table = KeyTable::default();
    for stored in file.keys {
        if table.entries.contains_key(&stored.access_key_id) {
            return Err(corrupt(format!(
                "key {} appears twice",
                stored.access_key_id
            )));
        }
        let role = Role::parse(&stored.role).ok_or_else(|| {
            corrupt(format!(
                "key {} has unknown role {:?}",
                stored.access_key_id, stored.role
            ))
        })?;
        if !is_valid_account_id(&stored.account_id) {
            return Err(corrupt(format!(
                "key {} has invalid account id {:?}",
                stored.access_key_id, stored.account_id
            )));
        }
        let bearer_token_sha256 = match &stored.bearer_token_sha256 {
            None => None,
            Some(hex_text) => Some(parse_sha256_hex(hex_text).ok_or_else(|| {
                corrupt(format!(
                    "key {} has a malformed token hash",
                    stored.access_key_id
                ))
            })?),
        };
        let secret_access_key =
            cipher.open(&stored.access_key_id, &stored.secret_access_key_sealed)?;
        table.insert(KeyEntry {
            key: AccessKey {
                access_key_id: stored.access_key_id,
                role,
                account_id: stored.account_id,
                created_at: stored.created_at,
                revoked_at: stored.revoked_at,
            },
            secret_access_key,
            secret_access_key_sealed: stored.secret_access_key_sealed,
            bearer_token_sha256,
        });
    }
    Ok(table)
}

fn load_or_create_master_key(
    master_key_file: &Path,
    keys_file: &Path,
    keys_file_exists: bool,
) -> Result<[u8; MASTER_KEY_LEN], KeyStoreError> {
    match std::fs::read(master_key_file) {
        Ok(bytes) => {
            warn_if_readable_by_others(master_key_file);
            <[u8; MASTER_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                KeyStoreError::MasterKeyWrongLength {
                    path: master_key_file.to_owned(),
                    found: bytes.len(),
                }
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if keys_file_exists {
                // A new master key would silently orphan every stored secret.
                return Err(KeyStoreError::MasterKeyMissing {
                    master_key: master_key_file.to_owned(),
                    keys_file: keys_file.to_owned(),
                });
            }
            let master_key: [u8; MASTER_KEY_LEN] = random_bytes()?;
            create_private_file_durably(master_key_file, &master_key)
                .map_err(|source| io_error(master_key_file, source))?;
            Ok(master_key)
        }
        Err(source) => Err(io_error(master_key_file, source)),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(mode) = opentrail_durable::permission_bits(path)
        && mode & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the master key is readable by other users; chmod 600 it"
        );
    }
}

/// AES-256-GCM sealing of secrets, bound to their access key id.
struct SecretCipher {
    key: aead::LessSafeKey,
    master_key_file: PathBuf,
}

impl SecretCipher {
    const NONCE_LEN: usize = aead::NONCE_LEN;

    fn new(master_key: &[u8; MASTER_KEY_LEN], master_key_file: PathBuf) -> SecretCipher {
        let unbound = match aead::UnboundKey::new(&aead::AES_256_GCM, master_key) {
            Ok(unbound) => unbound,
            // The only failure is a wrong key length, which the array type rules out.
            Err(ring::error::Unspecified) => unreachable!("AES-256 key is 32 bytes"),
        };
        SecretCipher {
            key: aead::LessSafeKey::new(unbound),
            master_key_file,
        }
    }

    fn seal(&self, access_key_id: &str, secret: &str) -> Result<String, KeyStoreError> {
        // Random 96-bit nonces are safe here: a key store seals a handful of secrets,
        // nowhere near the 2^32 messages where collisions would become a concern.
        let nonce_bytes: [u8; Self::NONCE_LEN] = random_bytes()?;
        let mut in_out = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce_bytes),
                aead::Aad::from(access_key_id.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| KeyStoreError::RandomSource("AES-GCM sealing failed".to_owned()))?;
        let mut sealed = Vec::with_capacity(Self::NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&in_out);
        Ok(BASE64.encode(sealed))
    }

    fn open(&self, access_key_id: &str, sealed_base64: &str) -> Result<String, KeyStoreError> {
        let mismatch = || KeyStoreError::MasterKeyMismatch {
            access_key_id: access_key_id.to_owned(),
            master_key: self.master_key_file.clone(),
        };
        let sealed = BASE64.decode(sealed_base64).map_err(|_| mismatch())?;
        if sealed.len() < Self::NONCE_LEN {
            return Err(mismatch());
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(Self::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| mismatch())?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(
                nonce,
                aead::Aad::from(access_key_id.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| mismatch())?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| mismatch())
    }
}

fn generate_access_key_id() -> Result<String, KeyStoreError> {
    let suffix = random_string(
        UPPER_ALPHANUMERIC,
        ACCESS_KEY_ID_LEN - ACCESS_KEY_ID_PREFIX.len(),
    )?;
    Ok(format!("{ACCESS_KEY_ID_PREFIX}{suffix}"))
}

fn generate_bearer_token() -> Result<String, KeyStoreError> {
    let random: [u8; BEARER_TOKEN_RANDOM_BYTES] = random_bytes()?;
    Ok(format!(
        "{BEARER_TOKEN_PREFIX}{}",
        BASE64_URL.encode(random)
    ))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], KeyStoreError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| KeyStoreError::RandomSource(error.to_string()))?;
    Ok(bytes)
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, so no character
/// is favoured when 256 is not a multiple of the alphabet size).
fn random_string(alphabet: &[u8], len: usize) -> Result<String, KeyStoreError> {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    const BATCH_BYTES: usize = 64;
    // Each byte is accepted with probability above 1/2, so this bound is never reached
    // in practice; it only keeps the loop finite if the RNG misbehaves.
    const BATCHES_MAX: usize = 1024;
    let accepted_below = 256 - (256 % alphabet.len());
    let mut text = String::with_capacity(len);
    for _ in 0..BATCHES_MAX {
        let batch: [u8; BATCH_BYTES] = random_bytes()?;
        for byte in batch {
            if usize::from(byte) < accepted_below {
                text.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
                if text.len() == len {
                    return Ok(text);
                }
            }
        }
    }
    Err(KeyStoreError::RandomSource(
        "the random source produced too few usable bytes".to_owned(),
    ))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

fn io_error(path: &Path, source: std::io::Error) -> KeyStoreError {
    KeyStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentrail_durable::permission_bits;

    const ACCOUNT: &str = "123456789012";
    const OTHER_ACCOUNT: &str = "210987654321";

    fn open_store(directory: &Path) -> KeyStore {
        KeyStore::open(directory).expect("open key store")
    }

    #[test]
    fn created_key_has_aws_shaped_id_and_secret() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let created = keys.create(Role::Read, ACCOUNT).expect("create");
        let id = &created.key.access_key_id;
        assert_eq!(id.len(), ACCESS_KEY_ID_LEN);
        assert!(id.starts_with(ACCESS_KEY_ID_PREFIX));
        assert!(
            id.bytes()
                .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
        );
        assert_eq!(created.secret_access_key.len(), SECRET_ACCESS_KEY_LEN);
        assert!(
            created
                .secret_access_key
                .bytes()
                .all(|byte| BASE64_ALPHABET.contains(&byte))
        );
        assert!(
            created.bearer_token.is_none(),
            "only ingest keys get a token"
        );
        assert_eq!(created.key.role, Role::Read);
        assert_eq!(created.key.account_id, ACCOUNT);
        assert!(created.key.is_active());
    }

    #[test]
    fn keys_survive_a_reopen_and_secrets_decrypt() {
        let directory = tempfile::tempdir().expect("temp dir");
        let created = open_store(directory.path())
            .create(Role::Admin, ACCOUNT)
            .expect("create");
        let reopened = open_store(directory.path());
        assert_eq!(
            reopened.secret_for_active_key(&created.key.access_key_id),
            Some(created.secret_access_key.clone())
        );
        assert_eq!(reopened.list(), vec![created.key.clone()]);
    }

    #[test]
    fn secrets_and_tokens_are_never_plaintext_in_keys_json() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let ingest = keys.create(Role::Ingest, ACCOUNT).expect("create ingest");
        let admin = keys.create(Role::Admin, ACCOUNT).expect("create admin");
        let token = ingest
            .bearer_token
            .clone()
            .expect("ingest keys get a token");
        let on_disk = std::fs::read_to_string(directory.path().join(KEYS_FILE_NAME)).expect("read");
        assert!(!on_disk.contains(&ingest.secret_access_key));
        assert!(!on_disk.contains(&admin.secret_access_key));
        assert!(!on_disk.contains(&token));
        assert!(!on_disk.contains(&token[BEARER_TOKEN_PREFIX.len()..]));
        assert!(on_disk.contains(&hex::encode(sha256(token.as_bytes()))));
        assert!(on_disk.contains(&ingest.key.access_key_id));
    }

    #[test]
    fn key_files_are_private() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        keys.create(Role::Read, ACCOUNT).expect("create");
        for name in [KEYS_FILE_NAME, MASTER_KEY_FILE_NAME] {
            let path = directory.path().join(name);
            assert_eq!(permission_bits(&path).expect("mode"), 0o600, "{name}");
        }
        let master_key = std::fs::read(directory.path().join(MASTER_KEY_FILE_NAME)).expect("read");
        assert_eq!(master_key.len(), MASTER_KEY_LEN);
    }

    #[test]
    fn revoked_key_has_no_secret_and_its_token_stops_working() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let created = keys.create(Role::Ingest, ACCOUNT).expect("create");
        let id = created.key.access_key_id.clone();
        let token = created.bearer_token.clone().expect("token");
        assert_eq!(
            keys.key_for_bearer_token(&token)
                .map(|key| key.access_key_id),
            Some(id.clone())
        );

        let revoked = keys.revoke(&id).expect("revoke");
        assert!(!revoked.is_active());
        assert_eq!(keys.secret_for_active_key(&id), None);
        assert_eq!(keys.key_for_bearer_token(&token), None);
        // Idempotent, and it stays revoked across a restart.
        assert_eq!(keys.revoke(&id).expect("revoke again"), revoked);
        let reopened = open_store(directory.path());
        assert_eq!(reopened.secret_for_active_key(&id), None);
        assert_eq!(reopened.key_for_bearer_token(&token), None);
        assert_eq!(reopened.get(&id), Some(revoked));
    }

    #[test]
    fn bearer_token_lookup_survives_reopen_and_rejects_strangers() {
        let directory = tempfile::tempdir().expect("temp dir");
        let created = open_store(directory.path())
            .create(Role::Ingest, OTHER_ACCOUNT)
            .expect("create");
        let token = created.bearer_token.expect("token");
        let reopened = open_store(directory.path());
        let found = reopened
            .key_for_bearer_token(&token)
            .expect("token still valid");
        assert_eq!(found.account_id, OTHER_ACCOUNT);
        assert_eq!(found.role, Role::Ingest);
        assert_eq!(reopened.key_for_bearer_token("otb_not-a-real-token"), None);
        assert_eq!(reopened.key_for_bearer_token(""), None);
    }

    #[test]
    fn revoking_an_unknown_key_is_not_found() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let error = keys.revoke("OTAKDOESNOTEXIST0000").expect_err("must fail");
        assert!(matches!(error, KeyStoreError::NotFound(_)));
    }

    #[test]
    fn invalid_account_is_rejected() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let error = keys.create(Role::Read, "12345").expect_err("must fail");
        assert!(matches!(error, KeyStoreError::InvalidAccountId(_)));
        assert!(keys.is_empty());
    }

    #[test]
    fn first_admin_key_is_created_once_with_a_private_credentials_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let credentials = directory.path().join(CREDENTIALS_FILE_NAME);
        let keys = open_store(directory.path());
        let created = keys
            .create_first_admin_key_if_none(ACCOUNT, "eu-west-1", &credentials)
            .expect("bootstrap")
            .expect("first start creates a key");
        assert_eq!(created.key.role, Role::Admin);
        assert_eq!(created.key.account_id, ACCOUNT);
        let text = std::fs::read_to_string(&credentials).expect("read credentials");
        assert_eq!(
            text,
            format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\nregion = eu-west-1\n",
                created.key.access_key_id, created.secret_access_key
            )
        );
        assert_eq!(permission_bits(&credentials).expect("mode"), 0o600);

        let again = open_store(directory.path())
            .create_first_admin_key_if_none(ACCOUNT, "eu-west-1", &credentials)
            .expect("second start");
        assert!(again.is_none(), "keys exist, so nothing is created");
    }

    #[test]
    fn a_replaced_master_key_is_detected() {
        let directory = tempfile::tempdir().expect("temp dir");
        open_store(directory.path())
            .create(Role::Read, ACCOUNT)
            .expect("create");
        let master_key_path = directory.path().join(MASTER_KEY_FILE_NAME);
        std::fs::write(&master_key_path, [7u8; MASTER_KEY_LEN]).expect("overwrite master key");
        let error = KeyStore::open(directory.path()).err().expect("must fail");
        assert!(
            matches!(error, KeyStoreError::MasterKeyMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_missing_master_key_with_existing_keys_is_refused() {
        let directory = tempfile::tempdir().expect("temp dir");
        open_store(directory.path())
            .create(Role::Read, ACCOUNT)
            .expect("create");
        std::fs::remove_file(directory.path().join(MASTER_KEY_FILE_NAME)).expect("remove");
        let error = KeyStore::open(directory.path()).err().expect("must fail");
        assert!(
            matches!(error, KeyStoreError::MasterKeyMissing { .. }),
            "{error}"
        );
        assert!(
            !directory.path().join(MASTER_KEY_FILE_NAME).exists(),
            "no new master key may be invented"
        );
    }

    #[test]
    fn a_sealed_secret_cannot_be_moved_to_another_key() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let first = keys.create(Role::Read, ACCOUNT).expect("first");
        let second = keys.create(Role::Admin, ACCOUNT).expect("second");
        let path = directory.path().join(KEYS_FILE_NAME);
        let mut file: KeysFile =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
        let first_sealed = file.keys[0].secret_access_key_sealed.clone();
        file.keys[1].secret_access_key_sealed = first_sealed;
        std::fs::write(&path, serde_json::to_vec(&file).expect("serialise")).expect("write");
        let error = KeyStore::open(directory.path()).err().expect("must fail");
        assert!(
            matches!(error, KeyStoreError::MasterKeyMismatch { .. }),
            "{error}"
        );
        drop((first, second));
    }

    #[test]
    fn list_never_contains_secrets_and_is_oldest_first() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let first = keys.create(Role::Admin, ACCOUNT).expect("first");
        let second = keys.create(Role::Ingest, OTHER_ACCOUNT).expect("second");
        let listed = keys.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].access_key_id, first.key.access_key_id);
        assert_eq!(listed[1].access_key_id, second.key.access_key_id);
        let debug = format!("{listed:?}");
        assert!(!debug.contains(&first.secret_access_key));
    }

    #[test]
    fn random_strings_use_only_the_alphabet_and_vary() {
        let first = random_string(UPPER_ALPHANUMERIC, 64).expect("random");
        let second = random_string(UPPER_ALPHANUMERIC, 64).expect("random");
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|byte| UPPER_ALPHANUMERIC.contains(&byte)));
        assert_ne!(first, second);
    }

    #[test]
    fn concurrent_creates_are_all_persisted() {
        let directory = tempfile::tempdir().expect("temp dir");
        let keys = open_store(directory.path());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let keys = keys.clone();
                std::thread::spawn(move || {
                    keys.create(Role::Read, ACCOUNT).map(|created| created.key)
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread").expect("create");
        }
        assert_eq!(open_store(directory.path()).list().len(), 8);
    }
}
