//! `sealpost keys list | rotate | retire`: key-encryption keys, run beside a
//! running server. Rotation rewraps data keys in short batches (Ctrl-C or a
//! crash loses at most the batch under way; run it again to resume).

use std::sync::Arc;

use clap::Subcommand;
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::maintenance::rotate::RewrapCursor;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Show each key-encryption key and how many data keys it wraps.
    List,
    /// Make a new key-encryption key the active one and rewrap every data key
    /// with it; resumes an interrupted rotation instead when there is one.
    Rotate {
        /// Data keys rewrapped per transaction.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
        /// Stop after about this many data keys (the rest waits for the next run).
        #[arg(long)]
        max_keys: Option<u64>,
    },
    /// Remove a key-encryption key no data key needs any more.
    Retire {
        /// The key's id, as `sealpost keys list` shows it.
        #[arg(long)]
        id: String,
    },
}

/// `sealpost keys ...`
pub(crate) async fn keys(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    match command {
        KeysCommand::List => list(&store).await,
        KeysCommand::Rotate { batch, max_keys } => rotate(&store, batch, max_keys).await,
        KeysCommand::Retire { id } => {
            store.maintenance().retire_kek(&id).await?;
            println!("Key-encryption key {id} retired: its file is removed from the keyring.");
            println!(
                "Backups made before today still hold it; destroy those copies of the keys as your retention allows."
            );
            Ok(())
        }
    }
}

async fn list(store: &store::Store) -> anyhow::Result<()> {
    println!("{:<12} {:>10}  status", "KEK", "data keys");
    for kek in store.maintenance().kek_usage().await? {
        let status = match (kek.active, kek.on_disk, kek.data_keys) {
            (true, _, _) => "active",
            (false, false, _) => "MISSING from the keyring: these data keys cannot be opened",
            (false, true, 0) => "unused: can be retired",
            (false, true, _) => "old: run `sealpost keys rotate` to move its data keys",
        };
        println!("{:<12} {:>10}  {status}", kek.id, kek.data_keys);
    }
    Ok(())
}

async fn rotate(store: &store::Store, batch: i64, max_keys: Option<u64>) -> anyhow::Result<()> {
    let rotation = store.maintenance().begin_rotation().await?;
    let remaining = store.maintenance().rotation_remaining(&rotation).await?;
    let total = rotation.rewrapped + remaining;
    if rotation.resumed {
        println!(
            "Resuming the rotation to key-encryption key {}: {} of {total} data keys rewrapped before.",
            rotation.kek_id, rotation.rewrapped
        );
    } else {
        println!(
            "New key-encryption key {} is active: new messages are sealed under it from now on.",
            rotation.kek_id
        );
        println!("Rewrapping {total} data keys (safe to interrupt; run again to resume).");
    }
    let mut cursor = RewrapCursor::default();
    let mut done = rotation.rewrapped;
    let mut this_run = 0u64;
    while !cursor.done() {
        if max_keys.is_some_and(|max| this_run >= max) {
            println!(
                "Stopped after {this_run} data keys ({done} of {total}); run `sealpost keys rotate` again to continue."
            );
            return Ok(());
        }
        let moved = store.maintenance().rewrap_batch(&rotation, &mut cursor, batch).await?;
        this_run += moved;
        done += moved;
        if moved > 0 {
            println!(
                "  {done} of {total} data keys rewrapped ({}%)",
                done * 100 / total.max(1)
            );
        }
    }
    match store.maintenance().finish_rotation(&rotation).await? {
        0 => {
            println!("Rotation finished: every data key is wrapped by {}.", rotation.kek_id);
            for kek in store.maintenance().kek_usage().await? {
                if !kek.active && kek.on_disk {
                    println!(
                        "  retire the old key when you are ready: sealpost keys retire --id {}",
                        kek.id
                    );
                }
            }
        }
        left => println!(
            "{left} data keys were sealed under an older key meanwhile; run `sealpost keys rotate` again to move them."
        ),
    }
    Ok(())
}
