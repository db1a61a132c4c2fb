//! Fuzz target `command_json`: see `livehub_server::fuzzing::command_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::command_json(data));
