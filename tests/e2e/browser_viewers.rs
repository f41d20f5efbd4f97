//! The viewers and "Download all" in headless Chromium
//! (`tests/browser/viewers.mjs`): the zip's files byte-identical after
//! unzip, the PNG, STL (binary and ASCII), TIFF and DICOM series drawn, and
//! damaged files explained; every page passes axe at phone and desktop width.

use super::browser::run_flow;
use super::viewers::{ADA, ADA_PASSWORD, ada_sends_files, fixture, instance_with_ada};

fn sha(bytes: &[u8]) -> String {
    store::crypto::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_download_all_and_viewers_show_every_kind() {
    let instance = instance_with_ada().await;
    let names = [
        ("radiograph.png", "image/png"),
        ("crown.stl", "model/stl"),
        ("crown-ascii.stl", "model/stl"),
        ("panoramic.tiff", "image/tiff"),
        ("cbct-1.dcm", "application/dicom"),
        ("cbct-2.dcm", "application/dicom"),
        ("cbct-3.dcm", "application/dicom"),
        ("broken.png", "image/png"),
        ("broken.stl", "model/stl"),
    ];
    let mut files: Vec<(&str, &str, Vec<u8>)> = names.iter().map(|(n, k)| (*n, *k, fixture(n))).collect();
    // The ASCII model goes under the same name as the binary one: the zip
    // must keep both ("crown (2).stl").
    files[2].0 = "crown.stl";
    let expected: Vec<(String, String)> = files
        .iter()
        .enumerate()
        .map(|(i, (name, _, bytes))| {
            let name = if i == 2 {
                "crown (2).stl".to_owned()
            } else {
                (*name).to_owned()
            };
            (name, sha(bytes))
        })
        .collect();
    let message = ada_sends_files(&instance, &files).await;
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("EMAIL", ADA.to_owned()),
        ("PASSWORD", ADA_PASSWORD.to_owned()),
        ("MESSAGE", message),
        ("FILES", serde_json::to_string(&expected).unwrap()),
    ];
    run_flow("viewers", &vars, async |what| panic!("unexpected ask {what}")).await;
}
