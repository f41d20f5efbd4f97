//! Delivery outcomes. Each is written in the hot path's group commit
//! (`group_commit.rs`) with the spool rows, seals and queued mails written
//! meanwhile: one transaction and one fsync for all of them, where outcomes
//! used to have a commit of their own. The caller returns only once its
//! outcome is committed, so nothing is reported done before it is on disk;
//! if a shared commit fails, each write is committed alone.

use std::sync::Arc;

use sqlx::Row;

use crate::jobs::{DeliveryOutcome, OutboundItem};
use crate::states::OutboundState;
use crate::{Queue, Result};

impl Queue<'_> {
    /// Records how an attempt ended, in a group commit; then removes the
    /// queue file if no delivery needs it any more. Returns once the outcome
    /// is committed.
    pub async fn outbound_done(&self, item: &OutboundItem, outcome: &DeliveryOutcome) -> Result<()> {
        let written = Arc::new((item.id.clone(), outcome.clone()));
        self.group_commit(
            Arc::new(move |_store, tx| {
                let written = Arc::clone(&written);
                Box::pin(async move { set_outcome(tx, &written.0, &written.1).await })
            }),
            None,
        )
        .await?;
        let blob = item.blob();
        if matches!(outcome, DeliveryOutcome::Retry { .. }) || blob.is_empty() {
            return Ok(());
        }
        // Committed: what follows is tidying, and an error in it is only
        // logged (the file stays; nothing is delivered twice for it).
        match self.blobs_still_queued(&[blob]).await {
            Ok(needed) if needed.is_empty() => {
                let path = self.spool_entry_path(blob);
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot tell whether a queue file is still needed; it stays"),
        }
        Ok(())
    }

    /// Which of `blobs` a queued delivery still reads.
    async fn blobs_still_queued(&self, blobs: &[&str]) -> Result<std::collections::HashSet<String>> {
        let mut needed = std::collections::HashSet::new();
        // Bounded statements (SQLite allows many more parameters; this keeps
        // each one small).
        for chunk in blobs.chunks(200) {
            let marks: Vec<String> = (0..chunk.len()).map(|n| format!("${}", n + 2)).collect();
            let sql = format!(
                "SELECT DISTINCT blob FROM outbound WHERE state = $1 AND blob IN ({})",
                marks.join(", ")
            );
            // Only placeholders are formatted in; the blobs are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(OutboundState::Queued.as_str());
            for blob in chunk {
                query = query.bind(*blob);
            }
            for row in query.fetch_all(&self.db).await? {
                needed.insert(row.try_get::<String, _>("blob")?);
            }
        }
        Ok(needed)
    }
}

async fn set_outcome(tx: &mut crate::write_tx::WriteTx, id: &str, outcome: &DeliveryOutcome) -> Result<()> {
    match outcome {
        // A sent mail's sealed body is needed no more: it goes, as a queue
        // file does (the row stays, for the counts and the admin's view).
        DeliveryOutcome::Delivered => sqlx::query(
            "UPDATE outbound SET state = $2, attempts = attempts + 1, last_error = NULL, claimed_until = 0, body = NULL
                 WHERE id = $1",
        )
        .bind(id)
        .bind(OutboundState::Sent.as_str())
        .execute(&mut **tx)
        .await?,
        DeliveryOutcome::Retry { error, at } => {
            sqlx::query(
                "UPDATE outbound SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, claimed_until = 0
                 WHERE id = $1",
            )
            .bind(id)
            .bind(crate::redact::delivery_error_summary(error))
            .bind(*at)
            .execute(&mut **tx)
            .await?
        }
        DeliveryOutcome::Failed { error } => sqlx::query(
            "UPDATE outbound SET state = $3, attempts = attempts + 1, last_error = $2, claimed_until = 0 WHERE id = $1",
        )
        .bind(id)
        .bind(crate::redact::delivery_error_summary(error))
        .bind(OutboundState::Failed.as_str())
        .execute(&mut **tx)
        .await?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::jobs::DeliveryOutcome;
    use crate::states::OutboundState;
    use crate::testing::store;

    /// A small message passing through is queued in its deliveries' rows, not
    /// a file; each reads back whole, sealed in the row; a sent one's body goes.
    #[tokio::test]
    async fn a_small_message_passing_through_waits_in_its_rows_and_a_sent_body_goes() {
        use futures::StreamExt as _;
        let (_dir, store, _clock) = store().await;
        let raw = b"Subject: lab order CANARY-41d2\r\n\r\nhello\r\n";
        let mut writer = store.queue().spool_writer().await.unwrap();
        writer.write(raw).await.unwrap();
        let spooled = writer.finish().await.unwrap();
        let rcpts = ["a@x.example".to_owned(), "b@x.example".to_owned()];
        store
            .queue()
            .accept_plain(&spooled, "s@y.example", &rcpts)
            .await
            .unwrap();
        let files = std::fs::read_dir(store.spool_in()).map_or(0, Iterator::count);
        assert_eq!(files, 0, "no spool file");

        let items = store.queue().due_outbound(10).await.unwrap();
        assert_eq!(items.len(), 2);
        for item in &items {
            assert_eq!(item.blob(), "", "read from its row");
            let mut body = Vec::new();
            let mut stream = store.queue().outbound_body(item).await.unwrap();
            while let Some(chunk) = stream.next().await {
                body.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(body, raw, "reads back whole");
        }
        let bodies = || async {
            let rows = sqlx::query("SELECT rcpt_to, body FROM outbound ORDER BY rcpt_to")
                .fetch_all(&store.db)
                .await
                .unwrap();
            rows.iter()
                .map(|row| {
                    let body: Option<Vec<u8>> = sqlx::Row::get(row, "body");
                    (sqlx::Row::get::<String, _>(row, "rcpt_to"), body)
                })
                .collect::<Vec<_>>()
        };
        for (_, body) in bodies().await {
            let body = body.expect("sealed in the row");
            assert!(!body.windows(11).any(|w| w == b"CANARY-41d2"), "sealed, not clear");
        }
        let to_a = items.iter().find(|i| i.rcpt_to == "a@x.example").unwrap();
        store
            .queue()
            .outbound_done(to_a, &DeliveryOutcome::Delivered)
            .await
            .unwrap();
        let after: Vec<(String, bool)> = bodies().await.into_iter().map(|(to, b)| (to, b.is_some())).collect();
        assert_eq!(
            after,
            [("a@x.example".to_owned(), false), ("b@x.example".to_owned(), true)],
            "the sent body goes; the one still queued stays"
        );
    }

    /// 30 messages to 2 recipients each, their 60 outcomes recorded at once:
    /// every one is committed as given, and a queue file goes once neither of
    /// its deliveries is queued any more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outcomes_recorded_at_once_are_each_committed_and_files_go_when_unneeded() {
        let (_dir, store, _clock) = store().await;
        for n in 0..30 {
            let spooled = crate::testing::spool_in_file(&store, &format!("Subject: {n}\r\n\r\n")).await;
            let rcpts = ["a@x.example".to_owned(), "b@x.example".to_owned()];
            store
                .queue()
                .accept_plain(&spooled, "s@y.example", &rcpts)
                .await
                .unwrap();
        }
        let items = store.queue().due_outbound(100).await.unwrap();
        assert_eq!(items.len(), 60);
        assert!(store.queue().due_outbound(100).await.unwrap().is_empty(), "all claimed");
        // Recipient a: delivered; recipient b: retried later, except for the
        // first ten messages, where b failed for good.
        let mut b_seen = 0;
        let mut calls = Vec::new();
        for item in &items {
            let outcome = if item.rcpt_to == "a@x.example" {
                DeliveryOutcome::Delivered
            } else {
                b_seen += 1;
                if b_seen <= 10 {
                    DeliveryOutcome::Failed {
                        error: "550 5.1.1 no".into(),
                    }
                } else {
                    DeliveryOutcome::Retry {
                        error: "451 4.3.0 later".into(),
                        at: store.now() + 60,
                    }
                }
            };
            let (store, item) = (std::sync::Arc::clone(&store), item.clone());
            calls.push(tokio::spawn(async move {
                store.queue().outbound_done(&item, &outcome).await
            }));
        }
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(store.queue().outbound_counts().await.unwrap(), (20, 30, 10));
        let retried = store
            .queue()
            .outbound_in_state(OutboundState::Queued, 100)
            .await
            .unwrap();
        assert!(retried.iter().all(|i| i.attempts == 1 && i.rcpt_to == "b@x.example"));
        // Ten messages are done with (a sent, b failed): their files are gone;
        // twenty still wait for b.
        let files = std::fs::read_dir(store.spool_in()).unwrap().count();
        assert_eq!(files, 20);
    }
}
