//! Envelope encryption. Each message gets a random 256-bit data key; its blobs are
//! sealed with AES-256-GCM in fixed-size chunks (so any size streams in bounded
//! memory), and the data key is stored wrapped by a key-encryption key (KEK) that
//! has an id, so KEKs can rotate. Destroying a wrapped data key shreds the message.
//!
//! Sealed blob layout: `"SPS1"`, then chunks of `CHUNK` plaintext bytes, each
//! ciphertext followed by its 16-byte tag. The last chunk is always shorter than
//! `CHUNK` (possibly empty) and is authenticated as last, so truncation is detected.
//! Nonce = blob number (u32, big-endian) ‖ chunk index (u64, big-endian): unique
//! per data key as long as each blob of a message has its own number.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hmac};

use crate::{Error, Result};

/// Plaintext bytes per sealed chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const MAGIC: &[u8; 4] = b"SPS1";

/// Fills a buffer from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).expect("the system random generator failed");
    out
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut out = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut out).expect("the system random generator failed");
    hex::encode(out)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// A per-message data key. Never printed.
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES key"))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// A data key as stored: wrapped by the KEK named `kek_id`.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    pub kek_id: String,
    pub wrapped: Vec<u8>,
}

/// The key-encryption keys. Files `kek-<id>.key` (32 raw bytes, mode 0600) in one
/// folder; `active` names the one new data keys are wrapped with. Beside them,
/// `audit.key` (32 raw bytes, mode 0600) keys the audit log's chain: whoever can
/// write the database but not read this folder cannot forge or recompute it.
/// `sealpost keys rotate` (another process) may add a KEK and switch `active`
/// while a server runs: the server follows the folder (see `kek.rs`).
pub struct Keyring {
    dir: PathBuf,
    keks: RwLock<Keks>,
    audit: hmac::Key,
    /// What the `active` file looked like when last read (`kek.rs`): a wrap
    /// looks at it with one `stat`, and reads it only when it changed.
    active_stamp: std::sync::Mutex<Option<kek::FileStamp>>,
}

/// The KEKs loaded so far, and the one that wraps new data keys.
struct Keks {
    active: String,
    keys: BTreeMap<String, LessSafeKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keks = self.keks.read().expect("keyring lock");
        f.debug_struct("Keyring")
            .field("active", &keks.active)
            .field("ids", &keks.keys.keys())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads every KEK in `dir`, creating a first one when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut keys = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some(id) = name.strip_prefix("kek-").and_then(|n| n.strip_suffix(".key")) else {
                continue;
            };
            let bytes = std::fs::read(&path)?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| Error::invalid(format!("{} is not a 32-byte key", path.display())))?;
            keys.insert(id.to_owned(), LessSafeKey::new(key));
        }
        let active_file = dir.join("active");
        let active = match std::fs::read_to_string(&active_file) {
            Ok(id) => id.trim().to_owned(),
            Err(_) if keys.is_empty() => {
                let id = random_hex(4);
                let bytes: [u8; 32] = random_bytes();
                write_private(&dir.join(format!("kek-{id}.key")), &bytes)?;
                write_private(&active_file, id.as_bytes())?;
                keys.insert(
                    id.clone(),
                    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("key")),
                );
                id
            }
            Err(_) => keys.keys().next_back().cloned().unwrap_or_default(),
        };
        if !keys.contains_key(&active) {
            return Err(Error::UnknownKek(active));
        }
        let audit = hmac::Key::new(hmac::HMAC_SHA256, &load_or_create_secret(&dir.join(AUDIT_KEY_FILE))?);
        Ok(Self {
            dir: dir.to_owned(),
            keks: RwLock::new(Keks { active, keys }),
            audit,
            active_stamp: std::sync::Mutex::new(None),
        })
    }

    /// HMAC-SHA256 of `data` under the audit key.
    pub fn audit_mac(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.audit, data).as_ref().to_vec()
    }

    /// The secret of a reusable link (an invitation) from the nonce its row
    /// keeps: HMAC-SHA256 under a key derived from the key folder's secret, so
    /// the database alone (which keeps only the nonce and the link's hash) cannot
    /// make the link again.
    pub fn link_secret(&self, nonce: &[u8]) -> [u8; 32] {
        let derived = hmac::sign(&self.audit, b"sealpost: reusable link key v1");
        let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, nonce).as_ref());
        out
    }

    /// Wraps a data key with the active KEK (AES-256-GCM, random nonce): the
    /// newest one, as soon as `sealpost keys rotate` has made it.
    pub fn wrap(&self, key: &DataKey) -> WrappedKey {
        self.follow_active();
        let keks = self.keks.read().expect("keyring lock");
        let kek = &keks.keys[&keks.active];
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
        let mut sealed = key.0.to_vec();
        kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(keks.active.as_bytes()),
            &mut sealed,
        )
        .expect("sealing 32 bytes cannot fail");
        let mut wrapped = nonce_bytes.to_vec();
        wrapped.extend_from_slice(&sealed);
        WrappedKey {
            kek_id: keks.active.clone(),
            wrapped,
        }
    }

    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey> {
        self.load_kek(&wrapped.kek_id)?;
        let keks = self.keks.read().expect("keyring lock");
        let kek = keks
            .keys
            .get(&wrapped.kek_id)
            .ok_or_else(|| Error::UnknownKek(wrapped.kek_id.clone()))?;
        if wrapped.wrapped.len() != NONCE_LEN + 32 + TAG {
            return Err(Error::Crypto);
        }
        let (nonce, sealed) = wrapped.wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Crypto)?;
        let mut buf = sealed.to_vec();
        let plain = kek
            .open_in_place(nonce, Aad::from(wrapped.kek_id.as_bytes()), &mut buf)
            .map_err(|_| Error::Crypto)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(plain);
        Ok(DataKey(key))
    }
}

/// Rotation: adding, following and retiring KEKs in the folder.
mod kek;

/// The audit chain's key, in the keyring folder.
pub const AUDIT_KEY_FILE: &str = "audit.key";

/// Reads a 32-byte secret, or makes one when the file is absent. Two processes
/// starting at once (the server and a CLI command) end up with the same secret:
/// the secret is written in full to a temporary file, then linked into place,
/// which fails if the other was first; the loser reads the winner's.
fn load_or_create_secret(path: &Path) -> Result<[u8; 32]> {
    let read = |path: &Path| -> Result<[u8; 32]> {
        std::fs::read(path)?
            .try_into()
            .map_err(|_| Error::invalid(format!("{} is not a 32-byte key", path.display())))
    };
    if path.exists() {
        return read(path);
    }
    let bytes: [u8; 32] = random_bytes();
    let tmp = path.with_extension(format!("{}.tmp", random_hex(6)));
    write_private(&tmp, &bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e.into()),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn chunk_nonce(blob: u32, index: u64) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&blob.to_be_bytes());
    nonce[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

fn chunk_aad(last: bool) -> Aad<[u8; 9]> {
    let mut aad = *b"sealpost\0";
    aad[8] = u8::from(last);
    Aad::from(aad)
}

/// Seals a stream, chunk by chunk. Sans-I/O: feed plaintext, collect ciphertext.
pub struct Sealer {
    key: LessSafeKey,
    blob: u32,
    index: u64,
    pending: Vec<u8>,
    started: bool,
}

impl Sealer {
    /// `blob` numbers the blob within its data key; never reuse one per key.
    pub fn new(key: &DataKey, blob: u32) -> Self {
        Self {
            key: key.aead(),
            blob,
            index: 0,
            pending: Vec::with_capacity(CHUNK),
            started: false,
        }
    }

    /// Continues a stream whose header and first `index` chunks were sealed
    /// earlier (a resumed upload): the next chunk sealed is number `index`.
    pub fn resume(key: &DataKey, blob: u32, index: u64) -> Self {
        Self {
            index,
            started: true,
            ..Self::new(key, blob)
        }
    }

    /// Chunks sealed so far, counting those sealed before a [`resume`](Self::resume).
    pub fn chunks_sealed(&self) -> u64 {
        self.index
    }

    /// Appends the ciphertext of every whole chunk `data` completes to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            out.extend_from_slice(MAGIC);
            self.started = true;
        }
        while !data.is_empty() {
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == CHUNK {
                self.seal_pending(false, out);
            }
        }
    }

    /// Seals the final, short chunk.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.update(&[], out);
        self.seal_pending(true, out);
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.pending);
        let tag = self
            .key
            .seal_in_place_separate_tag(chunk_nonce(self.blob, self.index), chunk_aad(last), &mut out[start..])
            .expect("sealing a chunk cannot fail");
        out.extend_from_slice(tag.as_ref());
        self.pending.clear();
        self.index += 1;
    }
}

/// Opens a sealed stream, chunk by chunk, verifying each one and the end.
pub struct Opener {
    key: LessSafeKey,
    blob: u32,
    index: u64,
    pending: Vec<u8>,
    header: usize,
}

impl Opener {
    pub fn new(key: &DataKey, blob: u32) -> Self {
        Self {
            key: key.aead(),
            blob,
            index: 0,
            pending: Vec::with_capacity(CHUNK + TAG),
            header: 0,
        }
    }

    /// Appends the plaintext of every whole chunk `data` completes to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while self.header < MAGIC.len() && !data.is_empty() {
            if data[0] != MAGIC[self.header] {
                return Err(Error::Crypto);
            }
            self.header += 1;
            data = &data[1..];
        }
        while !data.is_empty() {
            // A full-size chunk is never the last one, so it can be opened as soon
            // as it is complete.
            let take = (CHUNK + TAG - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == CHUNK + TAG {
                self.open_pending(false, out)?;
            }
        }
        Ok(())
    }

    /// Opens the final chunk; fails if the stream was cut short.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.header < MAGIC.len() || self.pending.len() < TAG {
            return Err(Error::Crypto);
        }
        self.open_pending(true, out)
    }

    fn open_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let plain = self
            .key
            .open_in_place(chunk_nonce(self.blob, self.index), chunk_aad(last), &mut self.pending)
            .map_err(|_| Error::Crypto)?;
        out.extend_from_slice(plain);
        self.pending.clear();
        self.index += 1;
        Ok(())
    }
}

/// Seals a whole small buffer at once.
pub fn seal_all(key: &DataKey, blob: u32, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + plain.len() / CHUNK * TAG + 32);
    let mut sealer = Sealer::new(key, blob);
    sealer.update(plain, &mut out);
    sealer.finish(&mut out);
    out
}

/// Opens a whole small sealed buffer at once.
pub fn open_all(key: &DataKey, blob: u32, sealed: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(sealed.len());
    let mut opener = Opener::new(key, blob);
    opener.update(sealed, &mut out)?;
    opener.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_size_around_chunk_edges() {
        let key = DataKey::generate();
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = seal_all(&key, 7, &plain);
            if size > 0 {
                assert_ne!(
                    &sealed[4..4 + size.min(64)],
                    &plain[..size.min(64)],
                    "ciphertext must differ"
                );
            }
            assert_eq!(open_all(&key, 7, &sealed).unwrap(), plain, "size {size}");
        }
    }

    #[test]
    fn streams_in_odd_pieces() {
        let key = DataKey::generate();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
        let mut sealed = Vec::new();
        let mut sealer = Sealer::new(&key, 1);
        for piece in plain.chunks(777) {
            sealer.update(piece, &mut sealed);
        }
        sealer.finish(&mut sealed);
        let mut opened = Vec::new();
        let mut opener = Opener::new(&key, 1);
        for piece in sealed.chunks(1001) {
            opener.update(piece, &mut opened).unwrap();
        }
        opener.finish(&mut opened).unwrap();
        assert_eq!(opened, plain);
    }

    #[test]
    fn detects_truncation_tampering_wrong_blob_and_wrong_key() {
        let key = DataKey::generate();
        let plain = vec![42u8; 2 * CHUNK];
        let sealed = seal_all(&key, 0, &plain);
        // Cut after the first full chunk: every remaining chunk authenticates, but
        // none is marked last.
        assert!(open_all(&key, 0, &sealed[..4 + CHUNK + TAG]).is_err());
        let mut flipped = sealed.clone();
        flipped[100] ^= 1;
        assert!(open_all(&key, 0, &flipped).is_err());
        assert!(open_all(&key, 1, &sealed).is_err());
        assert!(open_all(&DataKey::generate(), 0, &sealed).is_err());
    }

    #[test]
    fn a_resumed_sealer_continues_the_same_stream() {
        let key = DataKey::generate();
        let plain: Vec<u8> = (0..(3 * CHUNK + 99)).map(|i| (i % 241) as u8).collect();
        let mut sealed = Vec::new();
        let mut first = Sealer::new(&key, 0);
        first.update(&plain[..2 * CHUNK + 5], &mut sealed);
        // The 5 bytes past the second chunk were never sealed: resume after it.
        assert_eq!(first.chunks_sealed(), 2);
        let mut second = Sealer::resume(&key, 0, 2);
        second.update(&plain[2 * CHUNK..], &mut sealed);
        second.finish(&mut sealed);
        assert_eq!(open_all(&key, 0, &sealed).unwrap(), plain);
    }

    #[test]
    fn keyring_wraps_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::load_or_create(dir.path()).unwrap();
        let key = DataKey::generate();
        let wrapped = ring.wrap(&key);
        let again = Keyring::load_or_create(dir.path()).unwrap();
        let unwrapped = again.unwrap(&wrapped).unwrap();
        assert_eq!(unwrapped.0, key.0);
        let mut bad = wrapped.clone();
        bad.wrapped[20] ^= 1;
        assert!(again.unwrap(&bad).is_err());
        bad.kek_id = "nope".into();
        assert!(matches!(again.unwrap(&bad), Err(Error::UnknownKek(_))));
        // The audit key is made once and kept: the same MAC after a reload.
        assert_eq!(ring.audit_mac(b"entry"), again.audit_mac(b"entry"));
        assert_ne!(ring.audit_mac(b"entry"), sha256(b"entry"));
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            Keyring::load_or_create(other.path()).unwrap().audit_mac(b"entry"),
            ring.audit_mac(b"entry")
        );
    }
}
