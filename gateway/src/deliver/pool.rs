//! Connections kept open per destination, shared by every delivery task.
//!
//! A destination is where a connection goes and how it is set up (host, port,
//! TLS, how the certificate is verified, the AUTH identity): the smarthost, or
//! one MX host (with its TLS policy or DANE records). Each destination has at
//! most `max_connections_per_destination` connections open, busy or idle; a
//! sender takes an idle one (newest first), else opens one if under the cap,
//! else waits. A connection carries one
//! message after another (RSET between them) and is closed with QUIT after
//! `idle_timeout` without a message.
//!
//! A broken connection is dropped. When the server cannot have taken the
//! message yet (the end-of-data was not written), the message goes out again at
//! once on another connection: once more after a fresh connection broke, as
//! often as needed while the connections that broke were ones kept from before
//! (they may have been closed by the server while idle). Otherwise the error is
//! the caller's, and the queue retries later (at least once: see
//! [`TxError::Broken`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::smtp_client::{Connection, TxError};
use super::{Body, Failure, Smarthost, SmarthostTls};

/// How many connections a destination gets and how long one may sit idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open to one destination at once (at least 1).
    pub max_connections_per_destination: usize,
    /// An idle connection is closed after this long without a message.
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections_per_destination: 10,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// What makes two connections interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DestinationKey {
    host: String,
    port: u16,
    tls: SmarthostTls,
    username: Option<String>,
    /// How the certificate was verified (the configuration's address): a
    /// connection verified one way never carries mail that needs another.
    verified_by: Option<usize>,
}

impl DestinationKey {
    fn of(peer: &Smarthost) -> Self {
        Self {
            host: peer.host.to_ascii_lowercase(),
            port: peer.port,
            tls: peer.tls,
            username: peer.username.clone(),
            verified_by: peer.tls_config.as_ref().map(|config| Arc::as_ptr(config) as usize),
        }
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
}

/// One destination's connections.
struct Destination {
    /// One permit per connection in use; idle ones hold none. A sender with a
    /// permit takes an idle connection if there is one and opens one only if
    /// not, so busy + idle never exceeds the permits.
    busy: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    opened: AtomicU64,
}

impl Destination {
    /// An idle connection that is still young enough, if any.
    fn take_idle(&self, idle_timeout: Duration) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < idle_timeout {
                return Some(entry.connection);
            }
            close(entry.connection);
        }
        None
    }

    fn put_idle(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.push(Idle {
            connection,
            since: Instant::now(),
        });
    }

    /// Closes the connections idle for `idle_timeout` or longer.
    fn close_stale(&self, idle_timeout: Duration) {
        let stale: Vec<Idle> = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let (stale, young) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|entry| entry.since.elapsed() >= idle_timeout);
            *idle = young;
            stale
        };
        for entry in stale {
            close(entry.connection);
        }
    }
}

/// Says QUIT in the background; the caller does not wait for it.
fn close(connection: Connection) {
    tokio::spawn(connection.quit());
}

/// The connections of every destination. Clone the `Arc` to share it: the cap
/// holds across every task that sends through the same pool.
pub struct Pool {
    settings: PoolSettings,
    destinations: Mutex<HashMap<DestinationKey, Arc<Destination>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(settings: PoolSettings) -> Arc<Self> {
        Arc::new(Self {
            settings: PoolSettings {
                max_connections_per_destination: settings.max_connections_per_destination.max(1),
                idle_timeout: settings.idle_timeout,
            },
            destinations: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> PoolSettings {
        self.settings
    }

    /// Connections opened so far to `peer` (for tests and benchmarks).
    pub fn connections_opened(&self, peer: &Smarthost) -> u64 {
        let destinations = self.destinations.lock().unwrap_or_else(PoisonError::into_inner);
        destinations
            .get(&DestinationKey::of(peer))
            .map_or(0, |destination| destination.opened.load(Ordering::Relaxed))
    }

    /// Connections to `peer` open and idle right now.
    pub fn idle_connections(&self, peer: &Smarthost) -> usize {
        let destinations = self.destinations.lock().unwrap_or_else(PoisonError::into_inner);
        destinations.get(&DestinationKey::of(peer)).map_or(0, |destination| {
            destination.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
        })
    }

    fn destination(&self, peer: &Smarthost) -> Arc<Destination> {
        let mut destinations = self.destinations.lock().unwrap_or_else(PoisonError::into_inner);
        let key = DestinationKey::of(peer);
        if let Some(destination) = destinations.get(&key) {
            return Arc::clone(destination);
        }
        let destination = Arc::new(Destination {
            busy: Arc::new(Semaphore::new(self.settings.max_connections_per_destination)),
            idle: Mutex::new(Vec::new()),
            opened: AtomicU64::new(0),
        });
        spawn_reaper(Arc::downgrade(&destination), self.settings.idle_timeout);
        destinations.insert(key, Arc::clone(&destination));
        destination
    }

    /// Sends one message to one recipient through `peer`. `open_body` is called
    /// for each attempt (the body is a stream, read once).
    pub(super) async fn send<F, Fut>(
        &self,
        peer: &Smarthost,
        helo: &str,
        from: &str,
        to: &str,
        mut open_body: F,
    ) -> Result<(), Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Body, Failure>>,
    {
        let destination = self.destination(peer);
        let mut fresh_broken = 0;
        loop {
            let body = open_body().await?;
            let permit: OwnedSemaphorePermit = Arc::clone(&destination.busy)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let kept = destination.take_idle(self.settings.idle_timeout);
            let is_reused = kept.is_some();
            let mut connection = if let Some(connection) = kept {
                connection
            } else {
                let connection = Connection::open(peer, helo).await?;
                destination.opened.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    port = peer.port,
                    pipelining = connection.pipelining(),
                    "smarthost connection opened"
                );
                connection
            };
            let result = connection.send(from, to, body).await;
            match result {
                Ok(()) => {
                    destination.put_idle(connection);
                    return Ok(());
                }
                Err(TxError::Refused(failure)) => {
                    destination.put_idle(connection);
                    return Err(failure);
                }
                Err(TxError::Broken { failure, resend }) => {
                    drop(connection);
                    drop(permit);
                    if !resend || (!is_reused && fresh_broken > 0) {
                        return Err(failure);
                    }
                    fresh_broken += usize::from(!is_reused);
                    tracing::debug!(
                        reused = is_reused,
                        "smarthost connection broke before the message was sent; sending again"
                    );
                }
            }
        }
    }
}

/// Closes a destination's stale idle connections until the pool is gone.
fn spawn_reaper(destination: Weak<Destination>, idle_timeout: Duration) {
    let period = idle_timeout.clamp(Duration::from_millis(10), Duration::from_secs(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(destination) = destination.upgrade() else {
                return;
            };
            destination.close_stale(idle_timeout);
        }
    });
}
