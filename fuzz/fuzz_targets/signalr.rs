//! Fuzz target `signalr`: see `livehub_server::fuzzing::signalr`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::signalr(data));
