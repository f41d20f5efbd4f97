//! The web portal: server-rendered pages where recipients register, set a
//! password, sign in, read secure messages and download attachments, and where
//! senders see read status and choose new recipients' relationships.
//!
//! Handlers are thin: extract, call one store operation, map the error
//! ([`Error`]). PHI (subjects, bodies, attachment names) is only ever rendered
//! into a response for a signed-in, authorised viewer; it never reaches a log.

mod addin;
mod api;
mod api_drop;
mod cookies;
mod csrf;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod nav;
mod next;
mod pages;
mod pagination;
mod routes;
pub mod sanitize;
mod serve;
mod session;
pub mod specialties;
pub mod sso;
#[cfg(test)]
mod tests;
pub mod time;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::Error;
pub use serve::{ServeLimits, serve};

/// What the portal needs to know about where it is published.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// The URL people reach the portal at, e.g. `https://secure.example.com`.
    pub public_url: String,
    /// Woken when the portal spools a message it wrote (`/compose`), so the
    /// gateway's sealer, which waits on it, seals it at once.
    pub spooled: Arc<tokio::sync::Notify>,
}

impl PortalConfig {
    /// The host part of `public_url`: the right side of the Message-IDs of
    /// messages written in the portal.
    pub fn message_id_host(&self) -> String {
        let rest = self
            .public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() {
            "localhost".to_owned()
        } else {
            host.to_ascii_lowercase()
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Arc<store::Store>,
    pub config: Arc<PortalConfig>,
    /// The `WebAuthn` relying party for passkeys (`None`: `public_url` can't be one).
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
}

/// The portal's routes, with security headers and request logging.
pub fn router(store: Arc<store::Store>, config: PortalConfig) -> Router {
    let state = AppState {
        store,
        webauthn: pages::passkeys::relying_party(&config.public_url).map(Arc::new),
        config: Arc::new(config),
    };
    let routes = all_routes()
        .into_router(&state)
        .fallback(pages::not_found)
        .with_state(state)
        .layer(middleware::from_fn(log_request));
    with_security_headers(routes)
}

/// Every route, by module, each group with its guards (see `routes.rs`).
pub(crate) fn all_routes() -> routes::Routes {
    routes::Routes::new()
        .merge(pages::routes())
        .merge(pages::account::routes())
        .merge(pages::two_step::routes())
        .merge(pages::passkeys::routes())
        .merge(pages::app_passwords::routes())
        .merge(pages::manage_users::routes())
        .merge(pages::lists::routes())
        .merge(pages::profile::routes())
        .merge(pages::profile_email::routes())
        .merge(pages::link_renewal::routes())
        .merge(pages::message::routes())
        .merge(pages::message_lifecycle::routes())
        .merge(pages::practice_retention::routes())
        .merge(pages::practice_delivery::routes())
        .merge(pages::register::routes())
        .merge(pages::attachment::routes())
        .merge(pages::zip_download::routes())
        .merge(pages::viewer::routes())
        .merge(pages::roles::routes())
        .merge(pages::compose::routes())
        .merge(pages::sso::routes())
        .merge(addin::routes())
        .merge(api::routes())
        .merge(pages::uploads::routes())
        .merge(pages::upload_form::routes())
        .merge(pages::contacts::routes())
        .merge(pages::drop::routes())
        .merge(api_drop::routes())
        .merge(pages::billing::routes())
}

/// Headers every response carries (RFC 6797 for HSTS; CSP Level 3).
fn with_security_headers(router: Router) -> Router {
    let fixed = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    router
        // Only the add-in's pages (addin.rs) set their own policy.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(fixed(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
        .layer(fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(fixed(header::REFERRER_POLICY, "no-referrer"))
        // Pages carry PHI: nothing may be cached unless a handler says otherwise.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

/// Logs each request by its route template (never the concrete path, which may
/// hold a token) and status.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        route,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis(),
        "portal request"
    );
    response
}
