//! Fuzz target `cursor`: see `livehub_server::fuzzing::cursor`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::cursor(data));
