//! Fuzz target for the MIME ingest path (issue 9): the streaming splitter in
//! both modes and several piece sizes, header inspection (subject tag, roles,
//! notice) and the transfer decoders. See `store::ingest::fuzz::exercise`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    store::ingest::fuzz::exercise(data);
});
