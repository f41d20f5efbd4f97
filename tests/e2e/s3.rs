//! Blobs on an S3-compatible store (issue 16): a real server on loopback (moto's
//! server mode, `pip install "moto[server]"`; `SEALPOST_TEST_MOTO_SERVER` names
//! its `moto_server`, else `/opt/moto-venv/bin/moto_server` or the PATH's). A
//! secure message with a multipart-sized attachment is sealed into the bucket,
//! read back byte-identical through the portal, the bucket holds only
//! ciphertext, and the spool is empty once it is sealed.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::{Instance, browser, files_containing, finish_two_step, link_in, register_form};
use super::secure_send::{canary, secure_message, send_via_relay};

/// A moto S3 server on a free loopback port, stopped when dropped.
pub(super) struct Moto {
    child: Child,
    pub(super) port: u16,
}

fn moto_program() -> String {
    if let Ok(path) = std::env::var("SEALPOST_TEST_MOTO_SERVER") {
        return path;
    }
    let venv = "/opt/moto-venv/bin/moto_server";
    if std::path::Path::new(venv).exists() {
        return venv.to_owned();
    }
    "moto_server".to_owned()
}

impl Moto {
    pub(super) async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(moto_program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): install it with `python3 -m venv /opt/moto-venv && /opt/moto-venv/bin/pip install \"moto[server]\"`")
            });
        let moto = Self { child, port };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not listen within 30 s");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub(super) async fn bucket(&self, name: &str) {
        let response = reqwest::Client::new().put(self.url(name)).send().await.unwrap();
        assert!(response.status().is_success(), "create bucket: {}", response.status());
    }

    /// `blobs.url` for `bucket/prefix` on this server.
    pub(super) fn blobs_url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint=http://127.0.0.1:{}&allow_http=true&region=us-east-1&access_key_id=test&secret_access_key=test",
            self.port
        )
    }

    /// Every object's key in `bucket`.
    pub(super) async fn keys(&self, bucket: &str) -> Vec<String> {
        let listing = reqwest::get(self.url(&format!("{bucket}?list-type=2&max-keys=1000")))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    pub(super) async fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        reqwest::get(self.url(&format!("{bucket}/{key}")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_message_is_sealed_into_s3_and_read_back_whole() {
    let moto = Moto::start().await;
    moto.bucket("sealpost-blobs").await;
    let url = moto.blobs_url("sealpost-blobs", "node-a");
    let instance = Instance::start_with(|config| config.blobs.url = Some(url)).await;
    instance.practice_with_doctor().await;
    let canary = canary();
    // 10 MB: more than one 5 MiB part of a multipart upload.
    let attachment: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .chain(canary.bytes())
        .collect();
    let message = secure_message("pat@example.org", &canary, &attachment, Some("patient"));
    send_via_relay(&instance, "ada@smiles.example", &["pat@example.org"], &message)
        .await
        .expect("accepted with 250");
    let notification = instance.wait_for_mail("pat@example.org", 1).await;

    // In the bucket, under the prefix: the message's blobs, all ciphertext.
    let keys = moto.keys("sealpost-blobs").await;
    assert!(
        keys.iter()
            .any(|k| k.starts_with("node-a/messages/") && k.ends_with("/part-0")),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| k.starts_with("node-a/")), "{keys:?}");
    let mut stored = 0;
    for key in &keys {
        let bytes = moto.object("sealpost-blobs", key).await;
        stored += bytes.len();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{key} holds the canary in clear"
        );
    }
    assert!(
        stored > attachment.len(),
        "the attachment's blob is in the bucket ({stored} bytes)"
    );
    // Nothing of the message stays on the node's disk once it is sealed.
    let spool = instance.config.data_dir.join("spool/in");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "spool not empty: {left:?}");
    assert!(files_containing(instance.dir.path(), canary.as_bytes()).is_empty());

    // The recipient registers and downloads the attachment, byte-identical.
    let invite = link_in(&notification, &format!("{}/m/", instance.config.public_url));
    let http = browser();
    let registered = register_form(&http, &instance, &invite, "Pat Example", "+1 201 555 0199").await;
    assert_eq!(registered.status(), 200);
    let set_password_mail = instance.wait_for_mail("pat@example.org", 2).await;
    let set_link = link_in(&set_password_mail, &format!("{}/password/", instance.config.public_url));
    let signed_in = http
        .post(instance.reachable(&set_link))
        .form(&[("password", "Correct-Horse-42"), ("confirm", "Correct-Horse-42")])
        .send()
        .await
        .unwrap();
    let signed_in = finish_two_step(&http, &instance, signed_in).await;
    assert!(
        signed_in.text().await.unwrap().contains(&canary),
        "the message reads back"
    );
    let message_url = invite.split('?').next().unwrap().to_owned();
    let download = http
        .get(instance.reachable(&format!("{message_url}/a/0")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let bytes = download.bytes().await.unwrap();
    assert!(bytes.as_ref() == attachment.as_slice(), "{} bytes back", bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_misnamed_s3_store_is_a_clear_error() {
    let moto = Moto::start().await;
    // A setting the S3 backend does not know: refused, naming the key, not the URL.
    let bad = format!("{}&colour=blue", moto.blobs_url("sealpost-blobs", "x"));
    let error = store::blobs::Blobs::connect(&bad).unwrap_err().to_string();
    assert!(error.contains("\"colour\"") && !error.contains("secret"), "{error}");
    let error = store::blobs::Blobs::connect("s3://b").unwrap_err().to_string();
    assert!(error.contains("names no bucket"), "{error}");
    // A bucket that does not exist: the store says so when it is used.
    let blobs = store::blobs::Blobs::connect(&moto.blobs_url("missing-bucket", "x")).unwrap();
    let key = store::crypto::DataKey::generate();
    let mut writer = blobs.create("messages/x/meta", &key, 2).await.unwrap();
    writer.write(b"{}").await.unwrap();
    assert!(writer.finish().await.is_err());
}
