//! What a load balancer and a monitoring system ask of a running node: is it
//! ready to serve (database, object store and keys reachable, migrations
//! current), and how much work is waiting in each queue.

use sqlx::Row;

use crate::states::OutboundState;
use crate::{Maintenance, Result};

/// One dependency's answer; `problem` says what failed (no PHI: a component
/// and an error kind).
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub problem: Option<String>,
}

/// The work waiting in one queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueDepth {
    /// `sealing` (accepted, not sealed yet), `notifications` (mail jobs not
    /// written yet) or `outbound` (waiting to be handed to the next server).
    pub queue: &'static str,
    pub depth: i64,
    /// Seconds since the oldest waiting item arrived (0 when empty).
    pub oldest_age: i64,
}

impl Maintenance<'_> {
    /// Each dependency checked once, in order: database, migrations, object
    /// store (a small object written and removed), keys.
    pub async fn readiness(&self) -> Vec<Check> {
        let database = sqlx::query("SELECT 1").fetch_one(&self.db).await;
        let migrations = match &database {
            Ok(_) => self.migrations_current().await,
            Err(_) => Err("the database is out of reach".to_owned()),
        };
        vec![
            Check {
                name: "database",
                problem: database
                    .err()
                    .map(|e| format!("cannot query the database: {}", kind(&e))),
            },
            Check {
                name: "migrations",
                problem: migrations.err(),
            },
            Check {
                name: "object_store",
                problem: self.probe_blobs().await.err(),
            },
            Check {
                name: "keys",
                problem: self.probe_keys().err(),
            },
        ]
    }

    async fn migrations_current(&self) -> std::result::Result<(), String> {
        let applied: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.db)
            .await
            .and_then(|row| row.try_get("v"))
            .map_err(|e| format!("cannot read the applied migrations: {}", kind(&e)))?;
        let known = crate::db::latest_migration(self.dialect);
        match applied.unwrap_or(0) {
            applied if applied == known => Ok(()),
            applied if applied < known => Err(format!(
                "the database is at migration {applied}, this binary needs {known}"
            )),
            applied => Err(format!(
                "the database is at migration {applied}, newer than this binary ({known}): upgrade this node"
            )),
        }
    }

    async fn probe_blobs(&self) -> std::result::Result<(), String> {
        let key = format!("readyz/{}", crate::crypto::random_hex(8));
        let write = async {
            let mut writer = self.blobs.create_raw(&key).await?;
            writer.put(bytes::Bytes::from_static(b"ready")).await?;
            writer.finish().await?;
            self.blobs.delete_prefix(&key).await
        };
        write
            .await
            .map_err(|e| format!("cannot write to the object store: {e}"))
    }

    fn probe_keys(&self) -> std::result::Result<(), String> {
        let on_disk = self
            .keys
            .ids_on_disk()
            .map_err(|e| format!("cannot read the key store: {e}"))?;
        let active = self.keys.active_id();
        if on_disk.contains(&active) {
            Ok(())
        } else {
            Err("the active key-encryption key is missing from the key store".to_owned())
        }
    }

    /// How much waits in each queue, for the metrics.
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>> {
        let now = self.now();
        let mut depths = Vec::with_capacity(3);
        for (queue, sql) in [
            (
                "sealing",
                "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM spool WHERE quarantined_at IS NULL",
            ),
            (
                "notifications",
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM mail_jobs WHERE done_at IS NULL",
            ),
        ] {
            let row = sqlx::query(sql).fetch_one(&self.db).await?;
            depths.push(depth(queue, &row, now)?);
        }
        let row = sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbound WHERE state = $1")
            .bind(OutboundState::Queued.as_str())
            .fetch_one(&self.db)
            .await?;
        depths.push(depth("outbound", &row, now)?);
        Ok(depths)
    }
}

fn depth(queue: &'static str, row: &sqlx::any::AnyRow, now: i64) -> Result<QueueDepth> {
    let depth: i64 = row.try_get("n")?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    Ok(QueueDepth {
        queue,
        depth,
        oldest_age: oldest.map_or(0, |at| (now - at).max(0)),
    })
}

/// A database error's kind, without its text (which may quote a value).
fn kind(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "unreachable",
        sqlx::Error::Database(_) => "database error",
        _ => "error",
    }
}
