//! Fuzz target `channel`: see `livehub_server::fuzzing::channel`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::channel(data));
