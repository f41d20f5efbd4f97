//! Wiring: opens the store, binds (or takes) the listeners, and starts the SMTP
//! listeners, the portal and the workers. `main.rs` and the end-to-end tests both
//! start Sealpost through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gateway::Wakers;
use gateway::deliver::{DeliveryConfig, Route, Smarthost, SmarthostTls};
use gateway::imap::{ImapConfig, ImapListenerKind, ImapServer};
use gateway::notify::NotifyConfig;
use gateway::shutdown::{self, Trigger};
use gateway::smtp::{ListenerKind, SmtpConfig, SmtpServer};
use gateway::workers::supervise;
use store::{Clock, Policy, Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{self, Config, OutboundMode, SmsProvider, split_host_port};

/// The sockets Sealpost serves on.
#[derive(Debug)]
pub struct Listeners {
    pub relay: TcpListener,
    pub submission: TcpListener,
    pub portal: TcpListener,
    pub imap: TcpListener,
    pub imap_tls: TcpListener,
}

impl Listeners {
    /// Binds the addresses in the configuration. Every address that cannot be
    /// bound is reported together, each with its config key, not only the first.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let wanted = [
            ("smtp.relay_listen", &config.smtp.relay_listen),
            ("smtp.submission_listen", &config.smtp.submission_listen),
            ("portal.listen", &config.portal.listen),
            ("imap.listen", &config.imap.listen),
            ("imap.tls_listen", &config.imap.tls_listen),
        ];
        let mut bound = Vec::with_capacity(wanted.len());
        let mut failures = Vec::new();
        for (key, addr) in wanted {
            match TcpListener::bind(addr.as_str()).await {
                Ok(listener) => bound.push(listener),
                Err(error) => failures.push(format!("{key} = {addr:?}: {}", bind_reason(&error))),
            }
        }
        if !failures.is_empty() {
            anyhow::bail!(
                "cannot listen on {} address(es):\n  - {}",
                failures.len(),
                failures.join("\n  - ")
            );
        }
        let mut bound = bound.into_iter();
        let mut next = || bound.next().expect("one listener per address");
        Ok(Self {
            relay: next(),
            submission: next(),
            portal: next(),
            imap: next(),
            imap_tls: next(),
        })
    }
}

/// Why an address could not be bound, in words an admin can act on.
fn bind_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => "already in use (another program, or another Sealpost, listens there)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".into(),
        std::io::ErrorKind::AddrNotAvailable => "not an address of this machine".into(),
        _ => error.to_string(),
    }
}

/// Where a running instance listens.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub relay: SocketAddr,
    pub submission: SocketAddr,
    pub portal: SocketAddr,
    pub imap: SocketAddr,
    pub imap_tls: SocketAddr,
}

/// A running Sealpost. Dropping it stops every task at once;
/// [`Running::shutdown`] stops gracefully.
pub struct Running {
    pub store: Arc<Store>,
    pub addresses: Addresses,
    /// Outbound mail we write is DKIM-signed.
    pub dkim_signing: bool,
    /// Wakes the workers (tests nudge the sealer instead of waiting for its poll).
    pub wakers: Wakers,
    /// The certificate every TLS listener serves (reload it on SIGHUP).
    pub certificates: Arc<crate::tls::Certificates>,
    /// Where the admin listener (`/healthz`, `/readyz`, `/metrics`) is, if on.
    pub admin: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    /// Tells the listeners and connections to stop, and waits for them.
    trigger: Option<Trigger>,
}

impl Running {
    /// Stops gracefully: the listeners close (new connections are refused),
    /// connections finish what is in flight — a message being received is
    /// received, spooled and answered `250` — and close, for at most `grace`;
    /// then every task stops. Returns whether everything finished in time.
    pub async fn shutdown(&mut self, grace: Duration) -> bool {
        let Some(trigger) = self.trigger.take() else {
            return true;
        };
        let drained = trigger.stop(grace).await;
        for task in &self.tasks {
            task.abort();
        }
        drained
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Removes staged uploads no message took once `[uploads] abandon_after_hours`
/// have passed (checked every 15 minutes).
async fn sweep_uploads(store: Arc<Store>) {
    loop {
        match store.uploads().sweep_abandoned().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "abandoned uploads removed"),
            Err(error) => tracing::warn!(%error, "sweeping abandoned uploads failed"),
        }
        tokio::time::sleep(Duration::from_mins(15)).await;
    }
}

/// Ends the plans whose paid period is over (their users are free again) and
/// renews the dev provider's, every 5 minutes.
async fn end_lapsed_plans(store: Arc<Store>) {
    loop {
        match store.billing().end_lapsed().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "lapsed plans ended"),
            Err(error) => tracing::warn!(%error, "ending lapsed plans failed"),
        }
        tokio::time::sleep(Duration::from_mins(5)).await;
    }
}

/// Opens the store of an existing installation, for admin commands: a
/// database that does not exist yet is refused (rather than created empty
/// beside the real one, e.g. when the command found another configuration).
pub async fn open_store(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Store>> {
    let url = config.database_url();
    if let Some(path) = sqlite_file(&url)
        && !path.exists()
    {
        anyhow::bail!(
            "the database {} does not exist; is this the server's configuration? \
             (`sealpost migrate` creates a new one)",
            path.display()
        );
    }
    create_store(config, clock).await
}

/// The file of a `sqlite:` URL (`None` for other databases and `:memory:`).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (path != ":memory:" && !path.is_empty()).then(|| path.into())
}

/// Opens the store with the configuration's settings, creating the database
/// (and applying migrations) when needed: `serve`, `migrate` and `restore`.
pub async fn create_store(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Store>> {
    let policy = Policy {
        retention_days: config.messages.retention_days,
        extend_step_days: config.messages.extend_step_days,
        max_retention_days: config.messages.max_retention_days,
        subject_tag: config.smtp.subject_tag.clone(),
        passwords: config.passwords.rules(),
        two_step: config.two_step.policy(),
        uploads: config.uploads.rules(),
        billing: config.billing.settings(),
        default_phone_country: config.accounts.phone_country(),
        job_lease: config.server.job_lease,
        delivery_lease: config.server.delivery_lease,
        ..Policy::default()
    };
    let store_config = StoreConfig {
        database_url: config.database_url(),
        blobs_url: config.blobs_url(),
        data_dir: config.data_dir.clone(),
        policy,
    };
    Store::open(store_config, clock).await.context("cannot open the store")
}

fn route(config: &Config) -> anyhow::Result<Route> {
    let outbound = &config.outbound;
    match outbound.mode {
        OutboundMode::Outbox => Ok(Route::Outbox(config.outbox_dir())),
        OutboundMode::Smarthost => {
            let (host, port) = split_host_port(&outbound.smarthost).context("outbound.smarthost must be HOST:PORT")?;
            Ok(Route::Smarthost(Smarthost {
                host,
                port,
                tls: match outbound.smarthost_tls {
                    config::SmarthostTls::Starttls => SmarthostTls::StartTls,
                    config::SmarthostTls::Tls => SmarthostTls::Implicit,
                    config::SmarthostTls::None => SmarthostTls::None,
                },
                username: outbound.smarthost_username.clone(),
                password: outbound.smarthost_password.clone(),
                accept_invalid_certs: outbound.smarthost_accept_invalid_certs,
                connect_to: Vec::new(),
                tls_config: None,
            }))
        }
        OutboundMode::Mx => {
            let settings = outbound.mx_settings().map_err(anyhow::Error::msg)?;
            let mx = gateway::deliver::Mx::new(settings).map_err(anyhow::Error::msg)?;
            Ok(Route::Mx(Arc::new(mx)))
        }
    }
}

/// The provider that sends two-step codes by text and voice.
fn sms_provider(config: &Config) -> Arc<dyn gateway::sms::SmsProvider> {
    let two_step = &config.two_step;
    match two_step.sms_provider {
        SmsProvider::Http => Arc::new(gateway::sms::HttpProvider::new(
            two_step.sms_url.clone(),
            two_step.sms_from.clone(),
            two_step.sms_username.clone(),
            two_step.sms_password.clone(),
        )),
        SmsProvider::Dev => Arc::new(gateway::sms::DevProvider {
            dir: config.sms_outbox_dir(),
        }),
    }
}

fn imap_config(config: &Config) -> ImapConfig {
    ImapConfig {
        max_connections: config.imap.max_connections,
        max_connections_per_ip: config.imap.max_connections_per_ip,
        login_timeout: Duration::from_secs(config.imap.login_timeout),
        // Appending is not offered: literals are commands' small arguments.
        max_literal: 64 * 1024,
        idle_timeout: Duration::from_secs(config.imap.idle_timeout),
    }
}

fn portal_limits(config: &Config) -> portal::ServeLimits {
    portal::ServeLimits {
        max_connections: config.portal.max_connections,
        client_timeout: Duration::from_secs(config.portal.client_timeout),
    }
}

/// Starts everything on the given listeners.
pub async fn start(config: &Config, listeners: Listeners, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let store = create_store(config, Arc::clone(&clock)).await?;
    // Nothing else runs on this data folder's spool now (admin commands leave it
    // alone): what a crash left there (half-written files, files without a row,
    // files whose deliveries are done) goes before anything new arrives.
    // Rows from before rows named their node are this node's if it holds the file.
    store.queue().adopt_spool().await?;
    let swept = store.queue().sweep_spool(Duration::ZERO).await?;
    if swept > 0 {
        tracing::info!(files = swept, "orphaned spool files removed at start-up");
    }
    // Claims a previous run's workers held are void: they are gone.
    store.queue().release_claims().await?;
    // Clients check a certificate's dates against real time, whatever clock the
    // store is given (tests move theirs).
    let certificates = crate::tls::open(config, store::SystemClock.now())?;
    let smtp_tls = crate::tls::server_config(&certificates, &[])?;
    let imap_tls = crate::tls::server_config(&certificates, &[])?;
    let portal_tls = crate::tls::server_config(&certificates, &[b"h2", b"http/1.1"])?;
    let mut tasks = crate::tls::start_tasks(config, &certificates, clock).await?;
    let wakers = Wakers::default();
    let addresses = Addresses {
        relay: listeners.relay.local_addr()?,
        submission: listeners.submission.local_addr()?,
        portal: listeners.portal.local_addr()?,
        imap: listeners.imap.local_addr()?,
        imap_tls: listeners.imap_tls.local_addr()?,
    };

    let smtp = SmtpServer::new(
        Arc::clone(&store),
        SmtpConfig {
            hostname: config.smtp.hostname.clone(),
            max_message_size: config.max_message_size(),
            max_recipients: config.smtp.max_recipients,
            max_connections: config.smtp.max_connections,
            submission_max_connections_per_ip: config.smtp.submission_max_connections_per_ip,
            command_timeout: Duration::from_secs(config.smtp.command_timeout),
            auth_timeout: Duration::from_secs(config.smtp.auth_timeout),
            data_timeout: Duration::from_secs(config.smtp.data_timeout),
            trusted_networks: config.trusted_networks(),
            relay_tenant_id: config
                .smtp
                .relay_tenant_id
                .as_ref()
                .map(|t| t.trim().to_ascii_lowercase()),
            relay_client_verifier: match &config.smtp.relay_client_ca {
                Some(path) => Some(crate::tls::client_verifier(path)?),
                None => None,
            },
            max_queue_depth: config.smtp.max_queue_depth,
        },
        Some(tokio_rustls::TlsAcceptor::from(smtp_tls)),
        wakers.clone(),
    );
    let dkim = dkim_signers(config)?;
    let direct = config.outbound.direct_policy().map(Arc::new);
    let notify = NotifyConfig {
        public_url: config.public_url.clone(),
        from_address: config.outbound.from_address.clone(),
        subject_template: config.outbound.notification_subject.clone(),
        dkim: dkim.clone(),
        reply_to: config.outbound.reply_to(),
        practice_from: config.outbound.practice_from(),
        direct: direct.clone(),
    };
    let delivery = DeliveryConfig {
        route: route(config)?,
        from_address: config.outbound.from_address.clone(),
        hostname: config.smtp.hostname.clone(),
        dkim: dkim.clone(),
        pool: gateway::deliver::Pool::new(config.outbound.pool_settings()),
        retry: config.outbound.retry_policy(),
        rates: config.outbound.rate_limits(),
        direct,
    };
    let router = portal::router(
        Arc::clone(&store),
        portal::PortalConfig {
            public_url: config.public_url.clone(),
            spooled: Arc::clone(&wakers.sealer),
        },
    );

    let imap = ImapServer::new(
        Arc::clone(&store),
        imap_config(config),
        tokio_rustls::TlsAcceptor::from(imap_tls),
    );

    // Each stage works on `workers` messages at once; delivery on `workers`
    // times a destination's connections, in one loop that claims for all of
    // them (`Queue::due_outbound`), so claims under load come in batches.
    let workers = config.server.worker_count();
    let sending = workers.saturating_mul(config.outbound.max_connections_per_destination.max(1));
    tasks.push(tokio::spawn({
        let (store, wakers, delivery) = (Arc::clone(&store), wakers.clone(), delivery.clone());
        supervise("delivery", move || {
            gateway::deliver::run_delivery(Arc::clone(&store), delivery.clone(), wakers.clone(), sending)
        })
    }));
    let admin = if config.admin.listen.is_empty() {
        None
    } else {
        let listener = TcpListener::bind(&config.admin.listen)
            .await
            .with_context(|| format!("cannot listen on {} (admin.listen)", config.admin.listen))?;
        let address = listener.local_addr()?;
        tasks.push(tokio::spawn(crate::admin_http::serve(listener, Arc::clone(&store))));
        Some(address)
    };
    let (trigger, stop) = shutdown::channel();
    let (portal_stop, portal_drain) = stop.clone().into_parts();
    tasks.extend([
        tokio::spawn(Arc::clone(&imap).serve(listeners.imap, ImapListenerKind::StartTls, stop.clone())),
        tokio::spawn(imap.serve(listeners.imap_tls, ImapListenerKind::ImplicitTls, stop.clone())),
        tokio::spawn(Arc::clone(&smtp).serve(listeners.relay, ListenerKind::Relay, stop.clone())),
        tokio::spawn(smtp.serve(listeners.submission, ListenerKind::Submission, stop)),
        tokio::spawn(portal::serve(
            listeners.portal,
            tokio_rustls::TlsAcceptor::from(portal_tls),
            router,
            portal_limits(config),
            portal_stop,
            portal_drain,
        )),
        // Workers are supervised: one that panics is started again.
        tokio::spawn({
            let (store, wakers, notify) = (Arc::clone(&store), wakers.clone(), notify.clone());
            supervise("sealer", move || {
                gateway::workers::run_sealer(Arc::clone(&store), wakers.clone(), notify.clone(), workers)
            })
        }),
        tokio::spawn({
            let (store, wakers) = (Arc::clone(&store), wakers.clone());
            supervise("notifier", move || {
                gateway::notify::run_notifier(Arc::clone(&store), notify.clone(), wakers.clone(), workers)
            })
        }),
        tokio::spawn({
            let (store, provider) = (Arc::clone(&store), sms_provider(config));
            supervise("sms", move || {
                gateway::sms::run_sms(Arc::clone(&store), Arc::clone(&provider))
            })
        }),
        tokio::spawn({
            let store = Arc::clone(&store);
            supervise("purger", move || {
                gateway::workers::run_purger(Arc::clone(&store), Duration::from_hours(1))
            })
        }),
        tokio::spawn({
            let store = Arc::clone(&store);
            supervise("upload sweeper", move || sweep_uploads(Arc::clone(&store)))
        }),
        tokio::spawn({
            let store = Arc::clone(&store);
            supervise("billing", move || end_lapsed_plans(Arc::clone(&store)))
        }),
        tokio::spawn({
            let store = Arc::clone(&store);
            supervise("orphan sweeper", move || {
                gateway::workers::run_sweeper(Arc::clone(&store), Duration::from_hours(1))
            })
        }),
    ]);
    // Anything spooled before a restart is picked up at once.
    wakers.sealer.notify_one();
    Ok(Running {
        store,
        addresses,
        dkim_signing: dkim.as_ref().is_some_and(|dkim| dkim.default_domain().is_some()),
        wakers,
        certificates,
        admin,
        tasks,
        trigger: Some(trigger),
    })
}

/// The DKIM keys of the default signing domain and of each `[[dkim.domains]]`
/// entry; `None` when there is none at all. A listed domain without its key
/// files is refused (its mail would fail DMARC).
pub fn dkim_signers(config: &Config) -> anyhow::Result<Option<Arc<gateway::dkim::Dkim>>> {
    let load = |keys: &crate::config::SigningKeys| {
        gateway::dkim::DomainSigner::load(&keys.key, &keys.domain, &keys.selector)
            .and_then(|signer| {
                signer
                    .map(|signer| signer.with_ed25519(&keys.ed25519_key, &keys.ed25519_selector))
                    .transpose()
            })
            .map_err(anyhow::Error::msg)
    };
    let default = load(&config.dkim.default_keys(&config.data_dir))?;
    let mut domains = Vec::new();
    for keys in config.dkim.domain_keys(&config.data_dir) {
        let signer = load(&keys)?.with_context(|| {
            format!(
                "no DKIM key for {} at {} (run `sealpost dkim keygen --domain {}`)",
                keys.domain,
                keys.key.display(),
                keys.domain
            )
        })?;
        domains.push(signer);
    }
    Ok(gateway::dkim::Dkim::new(default, domains).map(Arc::new))
}
