//! The zip writer read back by an independent reader (Python's `zipfile`,
//! which checks every CRC) and the archive names an attacker might send.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use super::{ZipError, ZipWriter, safe_names};

fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(1_764_633_600);
    let mut out = Vec::new();
    for (name, data) in files {
        out.extend_from_slice(&zip.begin(name, data.len() as u64));
        // In pieces, as a stream hands them over.
        for piece in data.chunks(7) {
            zip.data(piece);
            out.extend_from_slice(piece);
        }
        out.extend_from_slice(&zip.end().unwrap());
    }
    out.extend_from_slice(&zip.finish());
    out
}

/// Each entry as `name size sha256`, as Python reads the archive.
fn python_reads(bytes: &[u8]) -> String {
    let script = "import sys,io,zipfile,hashlib\n\
        z=zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))\n\
        assert z.testzip() is None\n\
        for i in z.infolist(): print(i.filename, i.file_size, hashlib.sha256(z.read(i)).hexdigest())";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    store::crypto::sha256(bytes).iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[test]
fn stored_entries_with_descriptors_read_back_byte_identical() {
    let big: Vec<u8> = (0..100_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[1])
        .collect();
    let files: [(&str, &[u8]); 3] = [
        ("x-ray.png", b"\x89PNG fake"),
        ("empty.txt", b""),
        ("crown ü.stl", &big),
    ];
    let listing = python_reads(&archive(&files));
    let expected: String = files.iter().fold(String::new(), |mut text, (name, data)| {
        let _ = writeln!(text, "{name} {} {}", data.len(), sha(data));
        text
    });
    assert_eq!(listing, expected);
}

#[test]
fn an_entry_shorter_or_longer_than_announced_is_refused() {
    let mut zip = ZipWriter::new(0);
    zip.begin("a.txt", 5);
    zip.data(b"abc");
    assert_eq!(zip.end(), Err(ZipError::SizeMismatch));
    let mut zip = ZipWriter::new(0);
    zip.begin("a.txt", 2);
    zip.data(b"abc");
    assert_eq!(zip.end(), Err(ZipError::SizeMismatch));
}

#[test]
fn names_cannot_leave_the_folder_or_collide() {
    let names = safe_names([
        "../../etc/passwd",
        "..\\..\\Windows\\system.ini",
        "/abs/path/scan.dcm",
        "scan.dcm",
        "SCAN.dcm",
        "..",
        "",
        "con.txt",
        "a\u{0}b\r\n:c?.png",
        "  .hidden  ",
    ]);
    assert_eq!(
        names,
        [
            "passwd",
            "system.ini",
            "scan.dcm",
            "scan (2).dcm",
            "SCAN (3).dcm",
            "attachment-6",
            "attachment-7",
            "_con.txt",
            "a_b___c_.png",
            "hidden",
        ]
    );
    for name in &names {
        assert!(
            !name.contains('/') && !name.contains('\\') && !name.starts_with('.'),
            "{name}"
        );
    }
    // And the archive's entries are exactly those names.
    let data: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let listing = python_reads(&archive(&data));
    let read: Vec<&str> = listing.lines().map(|l| l.rsplitn(3, ' ').nth(2).unwrap()).collect();
    assert_eq!(read, names);
}

#[test]
fn long_names_keep_their_extension() {
    let long = format!("{}.tiff", "é".repeat(200));
    let names = safe_names([long.as_str()]);
    assert!(
        names[0].len() <= 150 && std::path::Path::new(&names[0]).extension().is_some_and(|e| e == "tiff"),
        "{}",
        names[0]
    );
}
