//! Write transactions, and the gate that queues this process's writers.
//!
//! `SQLite` lets one connection write at a time. Two of our pooled connections
//! asking at once made the second one sleep in `SQLite`'s busy handler (1, 2,
//! 5, 10 … ms between tries, on the connection's worker thread): issue 14
//! counted about eleven such sleeps per secure message. So on `SQLite` every
//! writer of this process first waits its turn on an async gate, in order,
//! and finds the database's write lock free when it gets there. Another
//! process (an admin command) still meets the busy handler, as before.
//! `PostgreSQL` locks rows, not the database: no gate.
//!
//! A [`WriteTx`] holds its turn until it commits, rolls back or is dropped.
//! Single-statement writes on the hot path take [`crate::Store::write_gate`]
//! for the statement. Never wait for the gate while holding a `WriteTx` (or
//! another turn): it is not re-entrant. The audit chain's lock is taken before
//! the gate, never after (`audit.rs`).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{Result, Store, db};

/// This process's turn to write to an `SQLite` database.
#[derive(Debug, Default)]
pub(crate) struct WriteGate(Arc<Mutex<()>>);

/// A turn at the gate (nothing on `PostgreSQL`); the next writer goes when it
/// drops.
#[must_use = "the turn ends when this is dropped"]
pub(crate) struct Turn(#[allow(dead_code)] Option<OwnedMutexGuard<()>>);

/// A write transaction: on `SQLite` it began with `BEGIN IMMEDIATE` and holds
/// this process's turn to write. Use `&mut *tx` as the executor, as with
/// sqlx's own transaction.
pub(crate) struct WriteTx {
    // Dropped first: an unfinished transaction is rolled back before the turn
    // passes on.
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Turn,
    /// The audit chain's last hash as this transaction left it, once it has
    /// appended to the chain (whose end it then holds: `audit.rs`): the next
    /// entry in the same transaction follows it without reading it back.
    pub(crate) audit_head: Option<Vec<u8>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Store {
    /// Waits for this process's turn to write (`SQLite`); at once on
    /// `PostgreSQL`. For a single statement outside a [`WriteTx`].
    pub(crate) async fn write_gate(&self) -> Turn {
        match self.dialect {
            db::Dialect::Sqlite => Turn(Some(Arc::clone(&self.write_gate.0).lock_owned().await)),
            db::Dialect::Postgres => Turn(None),
        }
    }

    /// Begins a write transaction (on `SQLite`, after waiting for this
    /// process's turn, with `BEGIN IMMEDIATE` so it never has to upgrade a
    /// read lock half-way).
    pub(crate) async fn write_tx(&self) -> Result<WriteTx> {
        let turn = self.write_gate().await;
        let tx = match self.dialect {
            db::Dialect::Sqlite => self.db.begin_with("BEGIN IMMEDIATE").await?,
            db::Dialect::Postgres => self.db.begin().await?,
        };
        Ok(WriteTx {
            tx,
            _turn: turn,
            audit_head: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    /// The number a one-row query answers, on one connection of `pool`.
    async fn number(pool: &sqlx::AnyPool, sql: &'static str) -> i64 {
        sqlx::query(sql).fetch_one(pool).await.unwrap().try_get(0).unwrap()
    }

    #[tokio::test]
    async fn a_writer_waits_its_turn_past_sqlites_busy_timeout_instead_of_failing() {
        let (_dir, store, _clock) = crate::testing::store().await;
        let first = store.write_tx().await.unwrap();
        // Longer than SQLite's busy timeout (5 s): without the turn, the
        // second writer's BEGIN IMMEDIATE would fail "database is locked".
        let second = {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let mut tx = store.write_tx().await?;
                sqlx::query("INSERT INTO practices (name, domain, created_at) VALUES ('Second', 'second.example', 0)")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, crate::Error>(())
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        assert!(
            !second.is_finished(),
            "the second writer waits while the first holds its turn"
        );
        first.commit().await.unwrap();
        second
            .await
            .unwrap()
            .expect("the second writer commits once the first is done");
        let sql = "SELECT COUNT(*) FROM practices WHERE domain = 'second.example'";
        assert_eq!(number(&store.db, sql).await, 1);
    }

    #[tokio::test]
    async fn claims_commit_without_their_own_fsync_and_are_seen_at_once() {
        let (_dir, store, _clock) = crate::testing::store().await;
        // `PRAGMA synchronous`: 2 is FULL, 1 NORMAL.
        assert_eq!(
            number(&store.db, "PRAGMA synchronous").await,
            2,
            "ordinary commits are fsynced (FULL)"
        );
        assert_eq!(
            number(&store.lazy_db, "PRAGMA synchronous").await,
            1,
            "claims' commits wait for the next fsync (NORMAL)"
        );
        let _turn = store.write_gate().await;
        sqlx::query("INSERT INTO practices (name, domain, created_at) VALUES ('Lazy', 'lazy.example', 0)")
            .execute(&store.lazy_db)
            .await
            .unwrap();
        let sql = "SELECT COUNT(*) FROM practices WHERE domain = 'lazy.example'";
        assert_eq!(
            number(&store.db, sql).await,
            1,
            "the ordinary pool reads what the lazy one committed"
        );
    }
}
