//! Fuzz target `command_msgpack`: see `livehub_server::fuzzing::command_msgpack`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::command_msgpack(data));
