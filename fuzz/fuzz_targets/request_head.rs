//! Fuzz target `request_head`: see `livehub_server::fuzzing::request_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::request_head(data));
