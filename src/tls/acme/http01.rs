//! The HTTP-01 challenge responder (RFC 8555 §8.3): a plain HTTP listener that
//! answers `GET /.well-known/acme-challenge/<token>` with the key authorization
//! while an order is being validated, and 404 for everything else. It faces the
//! internet, so connections are few, short and one request each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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

/// Most connections at once: the responder faces the internet on port 80.
const MAX_CONNECTIONS: usize = 64;
/// How long one connection may last, start to end (one request, no keep-alive).
const CONNECTION_TIME: Duration = Duration::from_secs(10);

/// Serves the responder on `listener` until the task is stopped: at most
/// [`MAX_CONNECTIONS`] at once (more are closed at once), each closed after one
/// request or [`CONNECTION_TIME`], so idle or slow clients cannot pile up.
pub async fn serve(listener: TcpListener, challenges: Arc<Challenges>) {
    let router = router(challenges);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                // Usually out of file descriptors: wait a little rather than spin.
                tracing::warn!(%error, "ACME HTTP-01 responder: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(CONNECTION_TIME, connection).await;
        });
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

    #[tokio::test]
    async fn idle_connections_cannot_crowd_it_out_beyond_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(listener, Arc::new(Challenges::default())));
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // One more is closed without an answer.
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut reply = Vec::new();
        let _ = extra.read_to_end(&mut reply).await;
        assert!(reply.is_empty(), "{}", String::from_utf8_lossy(&reply));
        // Once they go, it answers again.
        drop(idle);
        let mut answered = String::new();
        for _ in 0..100 {
            // A connection refused while the old ones close may be reset: try again.
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut reply = Vec::new();
            if stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .is_ok()
                && stream.read_to_end(&mut reply).await.is_ok()
            {
                answered = String::from_utf8_lossy(&reply).into_owned();
            }
            if !answered.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(answered.starts_with("HTTP/1.1 404"), "{answered}");
        task.abort();
    }
}
