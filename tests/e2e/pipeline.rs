//! The concurrent pipeline (issue 14): many messages over several connections
//! at once, secure and not, each arrives exactly once; and one invitation per
//! recipient, reused by the practice's later messages until it is used.

use std::collections::HashMap;
use std::time::Duration;

use super::harness::{Instance, browser, link_in, register_form};
use super::secure_send::send_via_relay;

/// Every mail in the outbox, as text.
fn outbox(instance: &Instance) -> Vec<String> {
    let dir = instance.config.data_dir.join("outbox/new");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .map(|m| String::from_utf8_lossy(&m).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Ordinary mail tagged `TAG-n` and secure mail to `r<k>@patients.example`,
/// sent over `connections` connections at once.
async fn send_all(instance: &Instance, plain: usize, secure: usize, connections: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..connections {
        let relay = instance.relay();
        tasks.spawn(async move {
            let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(relay.port())
                .tls(lettre::transport::smtp::client::Tls::None)
                .build();
            let mut sent = 0;
            for n in (lane..plain).step_by(connections) {
                let message = format!(
                    "From: ops@clinic.example\r\nTo: lab@lab.example\r\nSubject: order TAG-{n}-END\r\n\r\nGloves, box {n}.\r\n"
                );
                let envelope = lettre::address::Envelope::new(
                    Some("ops@clinic.example".parse().unwrap()),
                    vec!["lab@lab.example".parse().unwrap()],
                )
                .unwrap();
                lettre::AsyncTransport::send_raw(&transport, &envelope, message.as_bytes())
                    .await
                    .expect("plain mail accepted");
                sent += 1;
            }
            for n in (lane..secure).step_by(connections) {
                let to = format!("r{}@patients.example", n % 7);
                let message = format!(
                    "From: Dr Ada Lovelace <ada@smiles.example>\r\nTo: {to}\r\nSubject: [secure] Results {n}\r\n\
X-Sealpost-Role: {to} patient\r\n\r\nYour results, part {n}.\r\n"
                );
                let envelope = lettre::address::Envelope::new(
                    Some("ada@smiles.example".parse().unwrap()),
                    vec![to.parse().unwrap()],
                )
                .unwrap();
                lettre::AsyncTransport::send_raw(&transport, &envelope, message.as_bytes())
                    .await
                    .expect("secure mail accepted");
                sent += 1;
            }
            sent
        });
    }
    let mut total = 0;
    while let Some(sent) = tasks.join_next().await {
        total += sent.unwrap();
    }
    assert_eq!(total, plain + secure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_messages_over_several_connections_each_arrive_exactly_once() {
    let instance = Instance::start_with(|c| c.server.workers = 4).await;
    instance.practice_with_doctor().await;
    let (plain, secure) = (240, 60);
    send_all(&instance, plain, secure, 8).await;

    // Wait until every delivery has ended (nothing queued), then count.
    let store = instance.store();
    let mut settled = false;
    for _ in 0..1200 {
        let (queued, sent, failed) = store.queue().outbound_counts().await.unwrap();
        let waiting = store.queue().backlog().await.unwrap();
        if waiting == 0 && queued == 0 && sent + failed >= i64::try_from(plain + secure).unwrap() {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        settled,
        "the pipeline did not drain: {:?}",
        store.queue().outbound_counts().await
    );
    let (_, sent, failed) = store.queue().outbound_counts().await.unwrap();
    assert_eq!(failed, 0);
    assert_eq!(sent, i64::try_from(plain + secure).unwrap(), "one delivery per message");

    let mails = outbox(&instance);
    let mut tags: HashMap<usize, usize> = HashMap::new();
    let mut notifications: HashMap<String, usize> = HashMap::new();
    for mail in &mails {
        if let Some(rest) = mail.split("TAG-").nth(1) {
            let n: usize = rest.split("-END").next().unwrap().parse().unwrap();
            *tags.entry(n).or_default() += 1;
        } else {
            let link = link_in(mail.as_bytes(), &format!("{}/m/", instance.config.public_url));
            let id = link.split("/m/").nth(1).unwrap().split('?').next().unwrap().to_owned();
            *notifications.entry(id).or_default() += 1;
        }
    }
    assert_eq!(mails.len(), plain + secure, "no mail lost, none twice");
    assert_eq!(tags.len(), plain, "every ordinary mail arrived");
    assert!(tags.values().all(|&n| n == 1), "an ordinary mail arrived twice");
    assert_eq!(notifications.len(), secure, "one notification per secure message");
    assert!(notifications.values().all(|&n| n == 1), "a notification went twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invitation_per_recipient_is_reused_until_it_is_used() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let to = "pat@example.org";
    for n in 0..3 {
        let message = format!(
            "From: Dr Ada Lovelace <ada@smiles.example>\r\nTo: {to}\r\nSubject: [secure] Results {n}\r\n\
X-Sealpost-Role: {to} patient\r\n\r\nPart {n}.\r\n"
        );
        send_via_relay(&instance, "ada@smiles.example", &[to], message.as_bytes())
            .await
            .unwrap();
        instance.wait_for_mail(to, n + 1).await;
    }
    let prefix = format!("{}/m/", instance.config.public_url);
    let links: Vec<String> = instance.outbox_for(to).iter().map(|m| link_in(m, &prefix)).collect();
    let token = |link: &str| link.split("invite=").nth(1).expect("an invitation").to_owned();
    let ids: Vec<String> = links
        .iter()
        .map(|l| l.split("/m/").nth(1).unwrap().split('?').next().unwrap().to_owned())
        .collect();
    assert_eq!(token(&links[0]), token(&links[1]), "the invitation is reused");
    assert_eq!(token(&links[1]), token(&links[2]));
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "each link names its own message");
    let rows: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM tokens WHERE purpose = 'invite'")
            .fetch_one(&store_pool(&instance).await)
            .await
            .unwrap(),
        "n",
    );
    assert_eq!(rows, 1, "one invitation row for three messages");

    // The reused link opens the registration form for its own message, and a
    // link with the token on a message not sent to this person does not.
    let http = browser();
    let page = http.get(instance.reachable(&links[2])).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let forged = links[2].replacen(&ids[2], &store::ids::MessageId::generate().to_string(), 1);
    assert_ne!(
        http.get(instance.reachable(&forged)).send().await.unwrap().status(),
        200
    );
    let registered = register_form(&http, &instance, &links[2], "Pat Example", "+12015550199").await;
    assert_eq!(registered.status(), 200);
    // Used: every link with it is spent.
    assert_eq!(
        http.get(instance.reachable(&links[0])).send().await.unwrap().status(),
        410
    );
}

/// A pool on the instance's database, for counting rows.
async fn store_pool(instance: &Instance) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = instance.config.database_url();
    let url = if url.starts_with("sqlite:") {
        format!("{url}?mode=ro")
    } else {
        url
    };
    sqlx::AnyPool::connect(&url).await.unwrap()
}
