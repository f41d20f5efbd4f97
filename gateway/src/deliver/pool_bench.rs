//! Not a test: `bench/deliver/run.sh --client` runs the SMTP client alone
//! against Postfix's `smtp-sink`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::pool::{Pool, PoolSettings};
use super::test_server::body;
use super::{Smarthost, SmarthostTls};

/// Not a test: `bench/deliver/run.sh --client` runs it. The SMTP client alone
/// against Postfix's `smtp-sink` (`SMTP_SINK_PORT`: a sink already running),
/// one connection per message one at a time (as delivery worked before the pool)
/// vs the pool; prints messages/s and connections opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/deliver/run.sh --client"]
async fn bench_connection_per_message_vs_pool() {
    let port: u16 = std::env::var("SMTP_SINK_PORT")
        .expect("SMTP_SINK_PORT")
        .parse()
        .unwrap();
    let count: usize = std::env::var("BENCH_MESSAGES").map_or(2000, |n| n.parse().unwrap());
    let size: usize = std::env::var("BENCH_SIZE").map_or(10240, |n| n.parse().unwrap());
    let width: usize = std::env::var("BENCH_POOL").map_or(10, |n| n.parse().unwrap());
    let peer = Smarthost {
        host: "127.0.0.1".into(),
        port,
        tls: SmarthostTls::None,
        username: None,
        password: None,
        accept_invalid_certs: false,
        connect_to: Vec::new(),
        tls_config: None,
    };
    let text = Arc::new(format!("Subject: bench\r\n\r\n{}\r\n", "x".repeat(size)));
    let cpu_before = cpu_seconds();
    let started = std::time::Instant::now();
    for n in 0..count {
        let mut connection = super::smtp_client::Connection::open(&peer, "bench.test").await.unwrap();
        let sent = connection
            .send("from@bench.test", &format!("{n}@rcpt.test"), body(text.to_string()))
            .await;
        assert!(sent.is_ok(), "message {n}");
        connection.quit().await;
    }
    let before = started.elapsed();
    let cpu_single = cpu_seconds();
    let single = Pool::new(PoolSettings {
        max_connections_per_destination: 1,
        idle_timeout: Duration::from_secs(30),
    });
    let started = std::time::Instant::now();
    for n in 0..count {
        let text = text.to_string();
        let to = format!("{n}@rcpt.test");
        let sent = single.send(&peer, "bench.test", "from@bench.test", &to, || {
            let text = text.clone();
            async move { Ok(body(text)) }
        });
        assert!(sent.await.is_ok(), "message {n}");
    }
    let reused = started.elapsed();
    let cpu_pool = cpu_seconds();
    let pool = Pool::new(PoolSettings {
        max_connections_per_destination: width,
        idle_timeout: Duration::from_secs(30),
    });
    let started = std::time::Instant::now();
    let sends = (0..count).map(|n| {
        let (pool, peer, text) = (Arc::clone(&pool), peer.clone(), Arc::clone(&text));
        tokio::spawn(async move {
            let to = format!("{n}@rcpt.test");
            pool.send(&peer, "bench.test", "from@bench.test", &to, || {
                let text = text.to_string();
                async move { Ok(body(text)) }
            })
            .await
        })
    });
    let results = futures::stream::iter(sends)
        .buffer_unordered(width * 2)
        .collect::<Vec<_>>()
        .await;
    let after = started.elapsed();
    let cpu_end = cpu_seconds();
    let ms = |cpu: f64| cpu * 1000.0 / count as f64;
    assert!(results.iter().all(|r| matches!(r, Ok(Ok(())))));
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    println!("client alone: {count} messages x {size} B into smtp-sink");
    println!(
        "  one connection per message, one at a time: {:>7.0} msgs/s, {:.3} CPU ms/msg, {count} connections",
        rate(before),
        ms(cpu_single - cpu_before)
    );
    println!(
        "  pool of 1, one at a time:                   {:>7.0} msgs/s, {:.3} CPU ms/msg, {} connection",
        rate(reused),
        ms(cpu_pool - cpu_single),
        single.connections_opened(&peer)
    );
    println!(
        "  pool of {width}, {} at once:                  {:>7.0} msgs/s, {:.3} CPU ms/msg, {} connections",
        width * 2,
        rate(after),
        ms(cpu_end - cpu_pool),
        pool.connections_opened(&peer)
    );
}

/// This process's user + system CPU seconds so far (Linux: `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11..13)
        .map_or(0.0, |f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum());
    ticks / 100.0 // USER_HZ
}
