//! Control-message decoder fuzzing: decoding arbitrary bytes in either direction never
//! panics, and whatever decodes re-encodes to the same bytes and decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_proto::{FromWorker, ToWorker};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if let Ok(m) = ToWorker::decode(data) {
        m.encode(&mut out).expect("a decoded message re-encodes");
        assert_eq!(out, data, "encoding is canonical");
        assert_eq!(ToWorker::decode(&out), Ok(m));
    }
    if let Ok(m) = FromWorker::decode(data) {
        m.encode(&mut out).expect("a decoded message re-encodes");
        assert_eq!(out, data, "encoding is canonical");
        assert_eq!(FromWorker::decode(&out), Ok(m));
    }
});
