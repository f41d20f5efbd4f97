//! The store the fuzzing harnesses share (`imap::fuzzing`, `smtp::fuzzing`): a
//! real store in a given folder with one practice, `fuzz.example`, and its paid
//! doctor Ada, who may send secure mail.

use std::path::Path;
use std::sync::Arc;

use store::Store;
use store::accounts::{Role, User};

/// The practice's domain and Ada's address.
pub const DOMAIN: &str = "fuzz.example";
pub const ADA: &str = "ada@fuzz.example";

/// Opens a store in `dir` (which must outlive it) with the practice and Ada.
///
/// # Panics
/// If the store cannot be opened or filled: it is for tests and fuzzing only.
pub async fn practice_with_ada(dir: &Path) -> (Arc<Store>, User) {
    let config = store::StoreConfig {
        database_url: format!("sqlite://{}/db.sqlite", dir.display()),
        blobs_url: format!("file://{}/blobs", dir.display()),
        data_dir: dir.join("data"),
        policy: store::Policy::default(),
    };
    let store = Store::open(config, Arc::new(store::SystemClock))
        .await
        .expect("store opens");
    store
        .accounts()
        .add_practice("Fuzz Dental", DOMAIN)
        .await
        .expect("practice");
    let (ada, _) = store
        .accounts()
        .add_practice_user(ADA, "Ada", Role::Doctor, DOMAIN, true, false)
        .await
        .expect("sender");
    (store, ada)
}

/// A small deterministic generator (xorshift) for the bounded random-input
/// tests beside each harness, so a failure reproduces.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
