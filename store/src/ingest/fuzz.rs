//! One entry point that runs the MIME ingest path on arbitrary bytes, for the
//! fuzz target (`fuzz/fuzz_targets/mime_ingest.rs`) and for a bounded
//! random-input smoke test that runs with `cargo test`. It must never panic,
//! and the splitter's memory must stay bounded whatever the input.

use super::decode::Decoder;
use super::headers;
use super::mime::{Event, MAX_HEADER_BLOCK, Splitter};

/// Splits `data` as the sealer and the SMTP check do (in a few piece sizes),
/// reads every header block and decodes every part. Panics only if an
/// invariant breaks (that is what the fuzzer looks for).
pub fn exercise(data: &[u8]) {
    let piece = data.first().map_or(1, |b| usize::from(*b % 61) + 1);
    for (scan_only, size) in [(false, data.len().max(1)), (false, piece), (true, 4096)] {
        let mut splitter = if scan_only {
            Splitter::scan_only()
        } else {
            Splitter::new()
        };
        let mut events = Vec::new();
        let mut decoder = Decoder::for_encoding(None);
        for chunk in data.chunks(size) {
            splitter.push(chunk, &mut events);
            assert!(
                splitter.buffered() <= 2 * MAX_HEADER_BLOCK + size,
                "splitter holds {} bytes",
                splitter.buffered()
            );
            handle(&mut events, &mut decoder);
        }
        splitter.finish(&mut events);
        handle(&mut events, &mut decoder);
    }
}

fn handle(events: &mut Vec<Event>, decoder: &mut Decoder) {
    let mut out = Vec::new();
    for event in events.drain(..) {
        match event {
            Event::MessageHeaders(block) => {
                let facts = headers::inspect(&block, "[secure]");
                let _ = facts.is_secure();
                let _ = headers::raw_header_values(&block, "References");
            }
            Event::PartStart(block) => {
                let encoding = headers::raw_header_values(&block, "Content-Transfer-Encoding");
                *decoder = Decoder::for_encoding(encoding.first().map(String::as_str));
                let _ = headers::inspect(&block, "İ[SECURE]");
            }
            Event::PartData(data) => {
                decoder.push(&data, &mut out);
                out.clear();
            }
            Event::PartEnd => {
                std::mem::replace(decoder, Decoder::for_encoding(None)).finish(&mut out);
                out.clear();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::exercise;

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap()
        }
    }

    const SEEDS: &[&[u8]] = &[
        b"From: a@b.c\r\nSubject: [secure] x\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\n\
Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nhi\r\n--i--\r\n\
--o\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--o--\r\n",
        "Subject: İ[secure]éΩ\r\nX-Sealpost-Role: a@b.c patient\r\nX-Sealpost-Notice: =?utf-8?q?n=C3=A9?=\r\n\r\n=C3=\r\n".as_bytes(),
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=4=\r\n=ZZ=3D\n",
    ];

    /// Mutated seeds and random bytes through the whole ingest path: never a
    /// panic (a bounded stand-in for the fuzz target in `fuzz/`).
    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0x5ea1_9057);
        let tokens: &[&[u8]] = &[
            b"\r\n",
            b"\n",
            b"\r",
            b"--",
            b"--o",
            b"--i--",
            b"=",
            b"=\r\n",
            b":",
            b" ",
            b"\t",
            b"boundary=",
            b"Content-Type: multipart/mixed; boundary=o\r\n",
            b"\r\n\r\n",
            "İ".as_bytes(),
            b"\xff",
            b"[secure]",
        ];
        for case in 0..3000 {
            let mut input = SEEDS[case % SEEDS.len()].to_vec();
            for _ in 0..rng.below(12) {
                let at = rng.below(input.len() + 1);
                match rng.below(4) {
                    0 => {
                        let token = tokens[rng.below(tokens.len())];
                        input.splice(at..at, token.iter().copied());
                    }
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    2 if at < input.len() => input[at] = u8::try_from(rng.next() & 0xff).unwrap(),
                    _ => {
                        let random: Vec<u8> = (0..rng.below(40)).map(|_| (rng.next() & 0xff) as u8).collect();
                        input.splice(at..at, random);
                    }
                }
            }
            exercise(&input);
        }
        exercise(&[]);
        exercise(&super::super::mime::tests::nested(200));
    }
}
