//! The admin listener (`admin.listen`, plain HTTP for loopback or a private
//! network): `GET /healthz` (the process answers), `GET /readyz` (database,
//! migrations, object store and keys reachable: 200 or 503 with what failed)
//! and `GET /metrics` (Prometheus text format, see the `telemetry` crate).
//! Nothing here names a person or a message.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use store::Store;
use tokio::net::TcpListener;

/// Serves the admin routes on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, store: Arc<Store>) {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(store);
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!(%error, "admin listener stopped");
    }
}

/// 200 `ready` with one line per dependency, or 503 naming each that failed.
async fn readyz(State(store): State<Arc<Store>>) -> Response {
    let checks = store.maintenance().readiness().await;
    let ready = checks.iter().all(|c| c.problem.is_none());
    let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
    for check in &checks {
        match &check.problem {
            None => body.push_str(&format!("{}: ok\n", check.name)),
            Some(problem) => body.push_str(&format!("{}: {problem}\n", check.name)),
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The metrics, with the queue gauges read from the database now. If the
/// database is out of reach, the counters are still served and the gauges
/// keep their last values (`/readyz` says what is wrong).
async fn metrics(State(store): State<Arc<Store>>) -> Response {
    match store.maintenance().queue_depths().await {
        Ok(depths) => {
            for d in depths {
                telemetry::metrics().queue(d.queue, d.depth, d.oldest_age);
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot read the queue depths"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        telemetry::metrics().encode(),
    )
        .into_response()
}
