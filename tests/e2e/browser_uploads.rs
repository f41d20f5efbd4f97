//! The upload flow in headless Chromium (`tests/browser/uploads.mjs`): an
//! upload cut mid-way resumes and ends byte-identical, the form is held while
//! it runs, a refused type is explained, and every state passes axe at phone
//! and desktop width.

use futures::TryStreamExt as _;

use super::browser::run_flow;
use super::harness::{Instance, set_password};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_upload_cut_mid_way_resumes_byte_identical() {
    let instance = Instance::start_with(|config| config.two_step.required = false).await;
    let ada = instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Upload-Pass-77").await;
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("EMAIL", "ada@smiles.example".to_owned()),
        ("PASSWORD", "Upload-Pass-77".to_owned()),
    ];
    run_flow("uploads", &vars, async |what| {
        let Some(("check", rest)) = what.split_once(' ') else {
            panic!("unexpected ask {what}")
        };
        let (id, sha) = rest.split_once(' ').unwrap();
        let id = store::uploads::UploadId::parse(id).unwrap();
        let file = instance.store().uploads().open(&ada, &id).await.unwrap();
        let chunks: Vec<axum::body::Bytes> = file.body.try_collect().await.unwrap();
        let digest = store::crypto::sha256(&chunks.concat());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if hex == sha {
            "identical".to_owned()
        } else {
            format!("different ({hex})")
        }
    })
    .await;
}
