//! A zip archive written front to back while its files stream through
//! (PKWARE APPNOTE 6.3.10): "stored" entries, each followed by a data
//! descriptor with its CRC-32 and size, then the central directory; Zip64
//! records where a size or an offset passes 4 GiB. Nothing is buffered but the
//! directory (a few dozen bytes a file), so memory stays bounded.
//!
//! Also makes attachment names safe as archive paths: no folders, no `..`,
//! no control characters or names Windows refuses, unique ignoring case.

use std::collections::HashSet;

use bytes::{BufMut as _, Bytes, BytesMut};

const LOCAL: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
/// Bit 3: sizes and CRC follow the data; bit 11: the name is UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
const MAX32: u64 = 0xFFFF_FFFF;

/// An entry the central directory will list.
struct Entry {
    name: String,
    offset: u64,
    crc: u32,
    size: u64,
    zip64: bool,
}

/// The archive's state between the pieces it hands out.
pub(super) struct ZipWriter {
    offset: u64,
    entries: Vec<Entry>,
    current: Option<(crc32fast::Hasher, u64)>,
    dos_time: u16,
    dos_date: u16,
}

/// What went wrong writing an entry (the archive is then abandoned).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ZipError {
    /// An entry's bytes did not come to the size announced for it.
    SizeMismatch,
}

impl ZipWriter {
    /// An empty archive whose entries carry `unix_time` as their date.
    pub fn new(unix_time: i64) -> Self {
        let (dos_time, dos_date) = dos_date_time(unix_time);
        Self {
            offset: 0,
            entries: Vec::new(),
            current: None,
            dos_time,
            dos_date,
        }
    }

    /// Starts an entry of `size` bytes named `name` (already made safe):
    /// the local header to send before its data.
    pub fn begin(&mut self, name: &str, size: u64) -> Bytes {
        let zip64 = size >= MAX32;
        let extra: u16 = if zip64 { 20 } else { 0 };
        let mut out = BytesMut::with_capacity(30 + name.len() + usize::from(extra));
        out.put_u32_le(LOCAL);
        out.put_u16_le(if zip64 { 45 } else { 20 });
        out.put_u16_le(FLAGS);
        out.put_u16_le(0); // stored
        out.put_u16_le(self.dos_time);
        out.put_u16_le(self.dos_date);
        out.put_u32_le(0); // CRC: in the descriptor
        let placeholder = if zip64 { u32::MAX } else { 0 };
        out.put_u32_le(placeholder);
        out.put_u32_le(placeholder);
        out.put_u16_le(u16::try_from(name.len()).unwrap_or(u16::MAX));
        out.put_u16_le(extra);
        out.put_slice(name.as_bytes());
        if zip64 {
            out.put_u16_le(0x0001);
            out.put_u16_le(16);
            out.put_u64_le(0);
            out.put_u64_le(0);
        }
        self.entries.push(Entry {
            name: name.to_owned(),
            offset: self.offset,
            crc: 0,
            size,
            zip64,
        });
        self.current = Some((crc32fast::Hasher::new(), 0));
        self.offset += out.len() as u64;
        out.freeze()
    }

    /// Counts a piece of the current entry's data (sent as it is).
    pub fn data(&mut self, chunk: &[u8]) {
        if let Some((hasher, written)) = &mut self.current {
            hasher.update(chunk);
            *written += chunk.len() as u64;
        }
        self.offset += chunk.len() as u64;
    }

    /// Ends the current entry: its data descriptor.
    pub fn end(&mut self) -> Result<Bytes, ZipError> {
        let (hasher, written) = self.current.take().ok_or(ZipError::SizeMismatch)?;
        let entry = self.entries.last_mut().ok_or(ZipError::SizeMismatch)?;
        if written != entry.size {
            return Err(ZipError::SizeMismatch);
        }
        entry.crc = hasher.finalize();
        let mut out = BytesMut::with_capacity(24);
        out.put_u32_le(DESCRIPTOR);
        out.put_u32_le(entry.crc);
        if entry.zip64 {
            out.put_u64_le(entry.size);
            out.put_u64_le(entry.size);
        } else {
            out.put_u32_le(low32(entry.size));
            out.put_u32_le(low32(entry.size));
        }
        self.offset += out.len() as u64;
        Ok(out.freeze())
    }

    /// The central directory and the end records.
    pub fn finish(self) -> Bytes {
        let mut out = BytesMut::new();
        let directory_start = self.offset;
        for entry in &self.entries {
            let mut extra = BytesMut::new();
            if entry.size >= MAX32 {
                extra.put_u64_le(entry.size);
                extra.put_u64_le(entry.size);
            }
            if entry.offset >= MAX32 {
                extra.put_u64_le(entry.offset);
            }
            let zip64 = !extra.is_empty();
            out.put_u32_le(CENTRAL);
            out.put_u16_le(0x031e); // made by: Unix, 3.0
            out.put_u16_le(if zip64 || entry.zip64 { 45 } else { 20 });
            out.put_u16_le(FLAGS);
            out.put_u16_le(0);
            out.put_u16_le(self.dos_time);
            out.put_u16_le(self.dos_date);
            out.put_u32_le(entry.crc);
            out.put_u32_le(capped(entry.size));
            out.put_u32_le(capped(entry.size));
            out.put_u16_le(u16::try_from(entry.name.len()).unwrap_or(u16::MAX));
            out.put_u16_le(if zip64 {
                u16::try_from(extra.len() + 4).unwrap_or(0)
            } else {
                0
            });
            out.put_u16_le(0); // comment
            out.put_u16_le(0); // disk
            out.put_u16_le(0); // internal attributes
            out.put_u32_le(0o100_644 << 16); // a regular file, rw-r--r--
            out.put_u32_le(capped(entry.offset));
            out.put_slice(entry.name.as_bytes());
            if zip64 {
                out.put_u16_le(0x0001);
                out.put_u16_le(u16::try_from(extra.len()).unwrap_or(0));
                out.put_slice(&extra);
            }
        }
        let directory_size = out.len() as u64;
        let count = self.entries.len() as u64;
        if count >= 0xFFFF || directory_start >= MAX32 || directory_size >= MAX32 {
            let end64_at = directory_start + directory_size;
            out.put_u32_le(END64);
            out.put_u64_le(44);
            out.put_u16_le(45);
            out.put_u16_le(45);
            out.put_u32_le(0);
            out.put_u32_le(0);
            out.put_u64_le(count);
            out.put_u64_le(count);
            out.put_u64_le(directory_size);
            out.put_u64_le(directory_start);
            out.put_u32_le(LOCATOR64);
            out.put_u32_le(0);
            out.put_u64_le(end64_at);
            out.put_u32_le(1);
        }
        let count16 = u16::try_from(count).unwrap_or(u16::MAX);
        out.put_u32_le(END);
        out.put_u16_le(0);
        out.put_u16_le(0);
        out.put_u16_le(count16);
        out.put_u16_le(count16);
        out.put_u32_le(capped(directory_size));
        out.put_u32_le(capped(directory_start));
        out.put_u16_le(0);
        out.freeze()
    }
}

fn low32(value: u64) -> u32 {
    u32::try_from(value & MAX32).unwrap_or(u32::MAX)
}

/// A 32-bit field, or 0xFFFFFFFF when the value lives in a Zip64 record.
fn capped(value: u64) -> u32 {
    if value >= MAX32 { u32::MAX } else { low32(value) }
}

/// MS-DOS time and date (2-second steps, years from 1980) of a Unix time, UTC.
fn dos_date_time(unix_time: i64) -> (u16, u16) {
    use chrono::{Datelike as _, Timelike as _};
    let Some(t) = chrono::DateTime::from_timestamp(unix_time, 0) else {
        return (0, 0x21);
    };
    if t.year() < 1980 || t.year() > 2107 {
        return (0, 0x21);
    }
    let time = (t.hour() << 11) | (t.minute() << 5) | (t.second() / 2);
    let date = ((u32::try_from(t.year()).unwrap_or(1980) - 1980) << 9) | (t.month() << 5) | t.day();
    (u16::try_from(time).unwrap_or(0), u16::try_from(date).unwrap_or(0x21))
}

/// Archive paths for attachment names, in order: each a plain file name
/// (no folder, no `..`, no control or reserved characters, not a device
/// name Windows refuses, at most 150 bytes), unique ignoring case
/// (`scan.stl`, `scan (2).stl`); an empty name becomes `attachment-N`.
pub(super) fn safe_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken = HashSet::new();
    let mut out = Vec::new();
    for (index, name) in names.into_iter().enumerate() {
        let base = safe_name(name).unwrap_or_else(|| format!("attachment-{}", index + 1));
        let (stem, ext) = match base.rfind('.') {
            Some(dot) if dot > 0 => (&base[..dot], &base[dot..]),
            _ => (base.as_str(), ""),
        };
        let mut candidate = base.clone();
        let mut n = 2;
        while !taken.insert(candidate.to_lowercase()) {
            candidate = format!("{stem} ({n}){ext}");
            n += 1;
        }
        out.push(candidate);
    }
    out
}

fn safe_name(name: &str) -> Option<String> {
    // Only the last path segment counts, whichever separator a sender used.
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if cleaned.is_empty() {
        return None;
    }
    let mut cleaned = truncate(cleaned, 150);
    let stem = cleaned
        .split('.')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        cleaned.insert(0, '_');
    }
    Some(cleaned)
}

/// At most `max` bytes of `text`, keeping its extension when it has one.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ext = text.rfind('.').map_or("", |dot| &text[dot..]);
    let ext = if ext.len() <= 16 { ext } else { "" };
    let mut end = max - ext.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &text[..end])
}

#[cfg(test)]
#[path = "zip_writer_tests.rs"]
mod tests;
