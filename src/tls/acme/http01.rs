//! The HTTP-01 challenge responder (RFC 8555 §8.3): a plain HTTP listener that
//! answers `GET /.well-known/acme-challenge/<token>` with the key authorization
//! while an order is being validated, and 404 for everything else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

/// Tokens of the challenges in flight and their key authorizations.
#[derive(Debug, Default)]
pub struct Challenges(Mutex<HashMap<String, String>>);

impl Challenges {
    pub fn insert(&self, token: String, key_authorization: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token, key_authorization);
    }

    pub fn remove(&self, tokens: &[String]) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for token in tokens {
            map.remove(token);
        }
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
    }
}

async fn answer(State(challenges): State<Arc<Challenges>>, Path(token): Path<String>) -> impl IntoResponse {
    match challenges.get(&token) {
        Some(key_authorization) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        ),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "Not found\n".to_owned(),
        ),
    }
}

/// The responder's routes.
pub fn router(challenges: Arc<Challenges>) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not found\n") })
        .with_state(challenges)
}

/// Serves the responder on `listener` until the task is stopped.
pub async fn serve(listener: TcpListener, challenges: Arc<Challenges>) {
    if let Err(error) = axum::serve(listener, router(challenges)).await {
        tracing::error!(%error, "the ACME HTTP-01 responder stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn get_path(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn answers_only_tokens_in_flight() {
        let challenges = Arc::new(Challenges::default());
        challenges.insert("tok-1".into(), "tok-1.thumb".into());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(listener, Arc::clone(&challenges)));

        let ok = get_path(addr, "/.well-known/acme-challenge/tok-1").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("tok-1.thumb"), "{ok}");
        for path in [
            "/.well-known/acme-challenge/tok-2",
            "/.well-known/acme-challenge/../acme-challenge/tok-1x",
            "/",
        ] {
            let reply = get_path(addr, path).await;
            assert!(reply.starts_with("HTTP/1.1 404"), "{path}: {reply}");
        }
        challenges.remove(&["tok-1".to_owned()]);
        let gone = get_path(addr, "/.well-known/acme-challenge/tok-1").await;
        assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
        task.abort();
    }
}
