//! Fuzz target `time_query`: see `livehub_server::fuzzing::time_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::time_query(data));
