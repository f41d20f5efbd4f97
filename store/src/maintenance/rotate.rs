//! Key rotation: `sealpost keys rotate` makes a new KEK the active one and then
//! rewraps every data key still wrapped by an older KEK, in short transactions
//! of a batch each, beside a running server. Every update is a compare-and-swap
//! on the old wrapped bytes, so a row the server changed or deleted meanwhile is
//! left to it; the data keys themselves, and so every sealed blob and spool
//! file, stay as they are. Progress is kept in `kek_rotations` (in the same
//! transaction as each batch): an interrupted rotation resumes where it stopped.
//! A KEK is retired (its file removed) only once no data key is wrapped by it.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::audit::AuditEvent;
use crate::{Error, Maintenance, Result, Store};

/// Tables whose rows carry a data key in `kek_id` + `wrapped_key` columns.
const WRAPPED_TABLES: [&str; 4] = ["messages", "spool", "outbound", "uploads"];

/// A KEK and how many data keys it wraps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekUsage {
    pub id: String,
    /// The key file is in the keyring folder (if not, its data keys cannot open).
    pub on_disk: bool,
    pub active: bool,
    pub data_keys: u64,
}

/// A rotation under way.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new KEK every data key moves to.
    pub kek_id: String,
    /// Data keys rewrapped so far (before an interruption too).
    pub rewrapped: u64,
    /// An unfinished rotation was picked up rather than a new KEK made.
    pub resumed: bool,
}

/// Where a rewrap pass has got to. Column tables need no cursor (what is left
/// is what is not under the active KEK); sealed values are walked by id.
#[derive(Debug, Clone, Default)]
pub struct RewrapCursor {
    table: usize,
    last_user: i64,
    last_sms: i64,
}

impl RewrapCursor {
    pub fn done(&self) -> bool {
        self.table > WRAPPED_TABLES.len() + 1
    }
}

impl Maintenance<'_> {
    /// Every KEK in the keyring folder or named by a stored data key, with the
    /// number of data keys each wraps.
    pub async fn kek_usage(&self) -> Result<Vec<KekUsage>> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for table in WRAPPED_TABLES {
            let sql =
                format!("SELECT kek_id, COUNT(*) AS n FROM {table} WHERE wrapped_key IS NOT NULL GROUP BY kek_id");
            for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.db).await? {
                let n: i64 = row.try_get("n")?;
                *counts.entry(row.try_get("kek_id")?).or_default() += u64::try_from(n).unwrap_or(0);
            }
        }
        for (sql, columns) in [
            (
                "SELECT totp_secret, totp_pending FROM users WHERE totp_secret IS NOT NULL OR totp_pending IS NOT NULL",
                &["totp_secret", "totp_pending"][..],
            ),
            ("SELECT sealed FROM sms_jobs", &["sealed"][..]),
        ] {
            for row in sqlx::query(sql).fetch_all(&self.db).await? {
                for column in columns {
                    if let Some(sealed) = row.try_get::<Option<Vec<u8>>, _>(*column)? {
                        let id = Store::value_kek(&sealed).unwrap_or_else(|| "(unreadable)".into());
                        *counts.entry(id).or_default() += 1;
                    }
                }
            }
        }
        let active = self.keys.active_id();
        let on_disk = self.keys.ids_on_disk()?;
        for id in &on_disk {
            counts.entry(id.clone()).or_default();
        }
        Ok(counts
            .into_iter()
            .map(|(id, data_keys)| KekUsage {
                on_disk: on_disk.contains(&id),
                active: id == active,
                id,
                data_keys,
            })
            .collect())
    }

    /// Picks up an unfinished rotation to the active KEK, or makes a new KEK,
    /// makes it active (new messages are sealed under it from now on, by a
    /// running server too) and records the rotation.
    pub async fn begin_rotation(&self) -> Result<Rotation> {
        let mut tx = self.write_tx().await?;
        if self.dialect == crate::db::Dialect::Postgres {
            sqlx::query("LOCK TABLE kek_rotations IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let active = self.keys.active_id();
        let unfinished = sqlx::query("SELECT kek_id, rewrapped FROM kek_rotations WHERE finished_at IS NULL")
            .fetch_all(&mut *tx)
            .await?;
        for row in &unfinished {
            if row.try_get::<String, _>("kek_id")? == active {
                return Ok(Rotation {
                    kek_id: active,
                    rewrapped: u64::try_from(row.try_get::<i64, _>("rewrapped")?).unwrap_or(0),
                    resumed: true,
                });
            }
        }
        let kek_id = self.keys.add_kek()?;
        let now = self.now();
        // A rotation to an older KEK is superseded: this one moves its keys too.
        sqlx::query("UPDATE kek_rotations SET finished_at = $1 WHERE finished_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO kek_rotations (kek_id, started_at) VALUES ($1, $2)")
            .bind(&kek_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit(AuditEvent {
            actor: "admin",
            action: "keys.rotate",
            object: &format!("kek:{kek_id}"),
            client: "cli",
        })
        .await?;
        Ok(Rotation {
            kek_id,
            rewrapped: 0,
            resumed: false,
        })
    }

    /// Rewraps up to `batch` data keys not under the active KEK, in one
    /// transaction that also counts them in the rotation's progress. Returns how
    /// many it rewrapped; call again until `cursor.done()`.
    pub async fn rewrap_batch(&self, rotation: &Rotation, cursor: &mut RewrapCursor, batch: i64) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let mut moved = 0u64;
        let mut seen = 0i64;
        if let Some(table) = WRAPPED_TABLES.get(cursor.table) {
            let sql = format!(
                "SELECT id, kek_id, wrapped_key FROM {table} WHERE kek_id <> $1 AND wrapped_key IS NOT NULL ORDER BY id LIMIT $2"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&rotation.kek_id)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let id: String = row.try_get("id")?;
                let old = crate::crypto::WrappedKey {
                    kek_id: row.try_get("kek_id")?,
                    wrapped: row.try_get("wrapped_key")?,
                };
                let new = self
                    .keys
                    .rewrap(&old)
                    .map_err(|e| rewrap_failed(table, &id, &old.kek_id, &e))?;
                let update = format!(
                    "UPDATE {table} SET kek_id = $1, wrapped_key = $2 WHERE id = $3 AND kek_id = $4 AND wrapped_key = $5"
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(&new.kek_id)
                    .bind(&new.wrapped)
                    .bind(&id)
                    .bind(&old.kek_id)
                    .bind(&old.wrapped)
                    .execute(&mut *tx)
                    .await?;
                moved += done.rows_affected();
            }
            seen = i64::try_from(rows.len()).unwrap_or(0);
        } else if cursor.table == WRAPPED_TABLES.len() {
            let rows = sqlx::query(
                "SELECT id, totp_secret, totp_pending FROM users
                 WHERE (totp_secret IS NOT NULL OR totp_pending IS NOT NULL) AND id > $1 ORDER BY id LIMIT $2",
            )
            .bind(cursor.last_user)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                cursor.last_user = id;
                for column in ["totp_secret", "totp_pending"] {
                    let sql = format!("UPDATE users SET {column} = $1 WHERE id = $2 AND {column} = $3");
                    moved += self
                        .rewrap_value_in(&mut tx, row, column, &sql, id, &rotation.kek_id)
                        .await?;
                }
            }
            seen = i64::try_from(rows.len()).unwrap_or(0);
        } else if !cursor.done() {
            let rows = sqlx::query("SELECT id, sealed FROM sms_jobs WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(cursor.last_sms)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                cursor.last_sms = id;
                let sql = "UPDATE sms_jobs SET sealed = $1 WHERE id = $2 AND sealed = $3";
                moved += self
                    .rewrap_value_in(&mut tx, row, "sealed", sql, id, &rotation.kek_id)
                    .await?;
            }
            seen = i64::try_from(rows.len()).unwrap_or(0);
        }
        if seen < batch {
            cursor.table += 1;
        }
        if moved > 0 {
            sqlx::query("UPDATE kek_rotations SET rewrapped = rewrapped + $1 WHERE kek_id = $2")
                .bind(i64::try_from(moved).unwrap_or(i64::MAX))
                .bind(&rotation.kek_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Rewraps one sealed value column of a row when it is under an older KEK.
    async fn rewrap_value_in(
        &self,
        tx: &mut crate::write_tx::WriteTx,
        row: &sqlx::any::AnyRow,
        column: &str,
        update: &str,
        id: i64,
        kek_id: &str,
    ) -> Result<u64> {
        let Some(old) = row.try_get::<Option<Vec<u8>>, _>(column)? else {
            return Ok(0);
        };
        let under = Store::value_kek(&old);
        if under.as_deref() == Some(kek_id) {
            return Ok(0);
        }
        let table = update.split_whitespace().nth(1).unwrap_or_default();
        let new = self
            .rewrap_value(&old)
            .map_err(|e| rewrap_failed(table, &id.to_string(), under.as_deref().unwrap_or("?"), &e))?;
        let done = sqlx::query(sqlx::AssertSqlSafe(update.to_owned()))
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected())
    }

    /// Data keys not yet under the rotation's KEK.
    pub async fn rotation_remaining(&self, rotation: &Rotation) -> Result<u64> {
        Ok(self
            .kek_usage()
            .await?
            .iter()
            .filter(|usage| usage.id != rotation.kek_id)
            .map(|usage| usage.data_keys)
            .sum())
    }

    /// Marks the rotation finished when no data key is left under another KEK
    /// (one sealed by a server that had not yet seen the new KEK may be: then
    /// this returns how many, and running the rotation again moves them).
    pub async fn finish_rotation(&self, rotation: &Rotation) -> Result<u64> {
        let remaining = self.rotation_remaining(rotation).await?;
        if remaining == 0 {
            sqlx::query("UPDATE kek_rotations SET finished_at = $1 WHERE kek_id = $2 AND finished_at IS NULL")
                .bind(self.now())
                .bind(&rotation.kek_id)
                .execute(&self.db)
                .await?;
        }
        Ok(remaining)
    }

    /// Removes KEK `id` from the keyring folder: refused while it is the active
    /// one or any data key is still wrapped by it. Audited.
    pub async fn retire_kek(&self, id: &str) -> Result<()> {
        let usage = self.kek_usage().await?;
        let Some(kek) = usage.iter().find(|u| u.id == id && u.on_disk) else {
            return Err(Error::invalid(format!(
                "there is no key-encryption key {id:?} in the keyring (see `sealpost keys list`)"
            )));
        };
        if kek.data_keys > 0 {
            return Err(Error::invalid(format!(
                "key-encryption key {id} still wraps {} data key(s): finish `sealpost keys rotate` first",
                kek.data_keys
            )));
        }
        self.keys.remove_kek(id)?;
        self.audit(AuditEvent {
            actor: "admin",
            action: "keys.retire",
            object: &format!("kek:{id}"),
            client: "cli",
        })
        .await
    }
}

fn rewrap_failed(table: &str, id: &str, kek: &str, error: &Error) -> Error {
    Error::invalid(format!(
        "cannot rewrap the data key of {table} row {id} (wrapped by key-encryption key {kek}): {error}"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::Row;

    use crate::accounts::Role;
    use crate::{Policy, Store, StoreConfig, SystemClock};

    async fn store(dir: &std::path::Path) -> Arc<Store> {
        Store::open(
            StoreConfig {
                database_url: format!("sqlite://{}", dir.join("db.sqlite").display()),
                blobs_url: format!("file://{}", dir.join("blobs").display()),
                data_dir: dir.join("data"),
                policy: Policy::default(),
            },
            Arc::new(SystemClock),
        )
        .await
        .unwrap()
    }

    async fn rotate_all(store: &Store) -> super::Rotation {
        let rotation = store.maintenance().begin_rotation().await.unwrap();
        let mut cursor = super::RewrapCursor::default();
        while !cursor.done() {
            store
                .maintenance()
                .rewrap_batch(&rotation, &mut cursor, 1)
                .await
                .unwrap();
        }
        rotation
    }

    #[tokio::test]
    async fn authenticator_keys_and_queued_texts_are_rewrapped_and_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        store.accounts().add_practice("Smiles", "smiles.example").await.unwrap();
        let (user, _) = store
            .accounts()
            .add_practice_user("ada@smiles.example", "Ada", Role::Doctor, "smiles.example", true, false)
            .await
            .unwrap();
        sqlx::query("UPDATE users SET totp_secret = $1, totp_pending = $2 WHERE id = $3")
            .bind(store.seal_value(b"SECRET-ONE"))
            .bind(store.seal_value(b"SECRET-TWO"))
            .bind(user.id.0)
            .execute(&store.db)
            .await
            .unwrap();
        for text in [b"code 123456", b"code 654321"] {
            sqlx::query("INSERT INTO sms_jobs (user_id, sealed, created_at, next_at) VALUES ($1, $2, 0, 0)")
                .bind(user.id.0)
                .bind(store.seal_value(text))
                .execute(&store.db)
                .await
                .unwrap();
        }
        let old = store.keys.active_id();
        assert_eq!(store.maintenance().kek_usage().await.unwrap()[0].data_keys, 4);

        let rotation = rotate_all(&store).await;
        assert_eq!(store.maintenance().finish_rotation(&rotation).await.unwrap(), 0);
        let usage = store.maintenance().kek_usage().await.unwrap();
        assert!(usage.iter().any(|u| u.id == old && u.data_keys == 0 && !u.active));
        assert!(
            usage
                .iter()
                .any(|u| u.id == rotation.kek_id && u.data_keys == 4 && u.active)
        );
        store.maintenance().retire_kek(&old).await.unwrap();

        let row = sqlx::query("SELECT totp_secret, totp_pending FROM users WHERE id = $1")
            .bind(user.id.0)
            .fetch_one(&store.db)
            .await
            .unwrap();
        let secret: Vec<u8> = row.try_get("totp_secret").unwrap();
        assert_eq!(store.open_value(&secret).unwrap(), b"SECRET-ONE");
        let pending: Vec<u8> = row.try_get("totp_pending").unwrap();
        assert_eq!(store.open_value(&pending).unwrap(), b"SECRET-TWO");
        let texts = sqlx::query("SELECT sealed FROM sms_jobs ORDER BY id")
            .fetch_all(&store.db)
            .await
            .unwrap();
        assert_eq!(
            store
                .open_value(&texts[1].try_get::<Vec<u8>, _>("sealed").unwrap())
                .unwrap(),
            b"code 654321"
        );
        // Another rotation with nothing left to move still finishes.
        let again = rotate_all(&store).await;
        assert!(!again.resumed);
        assert_eq!(store.maintenance().finish_rotation(&again).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_missing_kek_stops_the_rotation_with_a_clear_error_and_retire_refuses_what_is_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        store.accounts().add_practice("Smiles", "smiles.example").await.unwrap();
        let (user, _) = store
            .accounts()
            .add_practice_user("ada@smiles.example", "Ada", Role::Doctor, "smiles.example", true, false)
            .await
            .unwrap();
        let sealed = store.seal_value(b"SECRET");
        // Pretend it was wrapped by a KEK this keyring never had.
        let mut forged = vec![4u8];
        forged.extend_from_slice(b"gone");
        forged.extend_from_slice(&sealed[1 + sealed[0] as usize..]);
        sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2")
            .bind(&forged)
            .bind(user.id.0)
            .execute(&store.db)
            .await
            .unwrap();
        let usage = store.maintenance().kek_usage().await.unwrap();
        assert!(usage.iter().any(|u| u.id == "gone" && !u.on_disk && u.data_keys == 1));
        let rotation = store.maintenance().begin_rotation().await.unwrap();
        let mut cursor = super::RewrapCursor::default();
        let error = loop {
            match store.maintenance().rewrap_batch(&rotation, &mut cursor, 10).await {
                Err(error) => break error.to_string(),
                Ok(_) => assert!(!cursor.done(), "the rotation cannot finish"),
            }
        };
        assert!(error.contains("users row") && error.contains("gone"), "{error}");
        assert!(store.maintenance().retire_kek("gone").await.is_err());
        assert!(store.maintenance().retire_kek("../keys/audit").await.is_err());
        assert!(
            store.maintenance().retire_kek(&rotation.kek_id).await.is_err(),
            "the active KEK stays"
        );
        // Resuming picks up the same rotation.
        assert!(store.maintenance().begin_rotation().await.unwrap().resumed);
    }
}
