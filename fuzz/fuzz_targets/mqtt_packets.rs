//! Fuzz target `mqtt_packets`: see `livehub_server::fuzzing::mqtt_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livehub_server::fuzzing::mqtt_packets(data));
