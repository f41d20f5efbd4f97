//! KEK rotation on disk: `sealpost keys rotate` adds `kek-<id>.key` and switches
//! `active` (atomically, by rename) while a server may be running; the server
//! follows: it wraps new data keys with whatever `active` names, and loads a KEK
//! it has not seen the first time a data key wrapped by it is opened. Retiring
//! removes a KEK's file once no data key needs it (the store checks that).

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};

use super::{Keyring, WrappedKey, random_bytes, random_hex, write_private};
use crate::{Error, Result};

/// A KEK id as it may appear in a file name: short, letters, digits, `-`, `_`.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Enough of a file's metadata to tell that it was replaced or written: a
/// rotation renames a new `active` file into place (a new inode, a new time).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    inode: u64,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            inode,
            modified: metadata.modified().ok(),
            len: metadata.len(),
        }
    }
}

impl Keyring {
    /// Switches to the KEK the folder's `active` file names, when that changed and
    /// the KEK loads; otherwise keeps the current one. Every wrap asks, so the
    /// file is read only when its stamp changed (one `stat` otherwise, where
    /// reading it was five system calls).
    pub(super) fn follow_active(&self) {
        let path = self.dir.join("active");
        let Ok(metadata) = std::fs::metadata(&path) else {
            return;
        };
        let stamp = FileStamp::of(&metadata);
        if *self.active_stamp.lock().expect("keyring lock") == Some(stamp) {
            return;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let id = text.trim();
        // Stamped only once followed: a KEK that does not load yet is tried again.
        let followed = || *self.active_stamp.lock().expect("keyring lock") = Some(stamp);
        if self.keks.read().expect("keyring lock").active == id {
            followed();
            return;
        }
        match self.load_kek(id) {
            Ok(()) if self.keks.read().expect("keyring lock").keys.contains_key(id) => {
                id.clone_into(&mut self.keks.write().expect("keyring lock").active);
                followed();
                tracing::info!(kek = id, "now wrapping new data keys with a new key-encryption key");
            }
            Ok(()) => tracing::warn!(
                kek = id,
                "the keyring's active file names a key-encryption key that is not there"
            ),
            Err(error) => tracing::warn!(kek = id, %error, "cannot load the active key-encryption key"),
        }
    }

    /// Loads `kek-<id>.key` unless it is loaded already; a missing file is not an
    /// error here (unwrapping then reports the KEK as unknown).
    pub(super) fn load_kek(&self, id: &str) -> Result<()> {
        if self.keks.read().expect("keyring lock").keys.contains_key(id) || !valid_id(id) {
            return Ok(());
        }
        let path = self.dir.join(format!("kek-{id}.key"));
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| Error::invalid(format!("{} is not a 32-byte key", path.display())))?;
        self.keks
            .write()
            .expect("keyring lock")
            .keys
            .insert(id.to_owned(), LessSafeKey::new(key));
        Ok(())
    }

    /// The id of the KEK new data keys are wrapped with.
    pub fn active_id(&self) -> String {
        self.follow_active();
        self.keks.read().expect("keyring lock").active.clone()
    }

    /// The ids of the KEK files in the folder, sorted.
    pub fn ids_on_disk(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("kek-"))
                .and_then(|n| n.strip_suffix(".key"))
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Makes a new KEK and makes it the active one: its file is written and
    /// synced first, then `active` is replaced by a rename, so a server reading
    /// the folder sees either the old KEK or the complete new one.
    pub fn add_kek(&self) -> Result<String> {
        let existing = self.ids_on_disk()?;
        let id = loop {
            let id = random_hex(4);
            if !existing.contains(&id) {
                break id;
            }
        };
        let bytes: [u8; 32] = random_bytes();
        let path = self.dir.join(format!("kek-{id}.key"));
        write_private(&path, &bytes)?;
        self.give_to_folder_owner(&path)?;
        let tmp = self.dir.join(format!("active.{}.tmp", random_hex(6)));
        write_private(&tmp, id.as_bytes())?;
        self.give_to_folder_owner(&tmp)?;
        std::fs::rename(&tmp, self.dir.join("active"))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.follow_active();
        Ok(id)
    }

    /// An admin running `sealpost keys rotate` as root must not leave the server's
    /// user (who owns the folder) a key file it cannot read: files made here
    /// belong to the folder's owner.
    fn give_to_folder_owner(&self, path: &std::path::Path) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let folder = std::fs::metadata(&self.dir)?;
            let file = std::fs::metadata(path)?;
            if (file.uid(), file.gid()) != (folder.uid(), folder.gid()) {
                std::os::unix::fs::chown(path, Some(folder.uid()), Some(folder.gid()))?;
            }
        }
        Ok(())
    }

    /// Removes a KEK's file. The caller has checked that no data key is wrapped
    /// by it; the active KEK is never removed.
    pub fn remove_kek(&self, id: &str) -> Result<()> {
        if !valid_id(id) {
            return Err(Error::invalid(format!("{id:?} is not a key-encryption key id")));
        }
        if self.active_id() == id {
            return Err(Error::invalid(format!(
                "key-encryption key {id} is the active one: rotate first (`sealpost keys rotate`)"
            )));
        }
        let path = self.dir.join(format!("kek-{id}.key"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::invalid(format!("there is no key-encryption key {id}")));
            }
            Err(e) => return Err(e.into()),
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.keks.write().expect("keyring lock").keys.remove(id);
        Ok(())
    }

    /// The same data key, wrapped by the active KEK instead (the data key itself
    /// never leaves this module).
    pub fn rewrap(&self, wrapped: &WrappedKey) -> Result<WrappedKey> {
        Ok(self.wrap(&self.unwrap(wrapped)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::DataKey;
    use super::*;

    #[test]
    fn a_second_keyring_on_the_same_folder_follows_a_rotation_and_a_retirement() {
        let dir = tempfile::tempdir().unwrap();
        let server = Keyring::load_or_create(dir.path()).unwrap();
        let admin = Keyring::load_or_create(dir.path()).unwrap();
        let old = server.active_id();
        let before = server.wrap(&DataKey::generate());
        let new = admin.add_kek().unwrap();
        assert_ne!(new, old);
        // The server wraps with the new KEK at once, and opens keys the admin rewrapped.
        assert_eq!(server.wrap(&DataKey::generate()).kek_id, new);
        let rewrapped = admin.rewrap(&before).unwrap();
        assert_eq!(rewrapped.kek_id, new);
        assert_eq!(server.unwrap(&rewrapped).unwrap().0, server.unwrap(&before).unwrap().0);
        assert!(admin.remove_kek(&new).is_err(), "the active KEK stays");
        admin.remove_kek(&old).unwrap();
        assert_eq!(admin.ids_on_disk().unwrap(), vec![new.clone()]);
        assert!(matches!(admin.unwrap(&before), Err(Error::UnknownKek(_))));
        assert!(admin.remove_kek("../audit").is_err());
        // A fresh load after the retirement still works.
        assert_eq!(Keyring::load_or_create(dir.path()).unwrap().active_id(), new);
    }

    #[test]
    fn an_active_file_written_in_place_is_followed_too() {
        let dir = tempfile::tempdir().unwrap();
        let server = Keyring::load_or_create(dir.path()).unwrap();
        let old = server.active_id();
        let new = Keyring::load_or_create(dir.path()).unwrap().add_kek().unwrap();
        assert_eq!(server.wrap(&DataKey::generate()).kek_id, new);
        // An admin's editor writes the old id back into the same file.
        std::fs::write(dir.path().join("active"), format!("{old}\n")).unwrap();
        assert_eq!(server.wrap(&DataKey::generate()).kek_id, old);
        // A name with no KEK behind it is passed over, and tried again later.
        std::fs::write(dir.path().join("active"), "later").unwrap();
        assert_eq!(server.wrap(&DataKey::generate()).kek_id, old);
        std::fs::write(dir.path().join("kek-later.key"), [7u8; 32]).unwrap();
        assert_eq!(server.wrap(&DataKey::generate()).kek_id, "later");
    }

    #[cfg(unix)]
    #[test]
    fn a_kek_made_by_root_belongs_to_the_folder_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::load_or_create(dir.path()).unwrap();
        // Only root can hand the folder to another user (as a packaged install does).
        if std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).is_err() {
            return;
        }
        let id = ring.add_kek().unwrap();
        for name in [format!("kek-{id}.key"), "active".to_owned()] {
            let meta = std::fs::metadata(dir.path().join(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        }
    }
}
