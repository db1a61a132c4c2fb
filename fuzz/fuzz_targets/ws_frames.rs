//! Fuzz target `ws_frames`: see `livehub_server::fuzzing::ws_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::ws_frames(data));
