//! Local blob files: written in place, durably, one file per attempt.

#[test]
fn a_new_blob_replaces_what_an_attempt_that_did_not_commit_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages/ab/abc/sealed");
    super::write_new_file(&path, b"first attempt, cut off").unwrap();
    let held = std::fs::File::open(&path).unwrap();
    super::write_new_file(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    // The earlier attempt's file is its own: not overwritten in place.
    use std::io::Read as _;
    let mut old = String::new();
    (&held).read_to_string(&mut old).unwrap();
    assert_eq!(old, "first attempt, cut off");
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["sealed"], "no staging file left beside it");
}
