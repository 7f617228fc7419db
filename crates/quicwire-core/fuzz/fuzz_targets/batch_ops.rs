//! The op batch JavaScript hands the engine (numbers plus one data buffer): whatever the
//! numbers say, every body must lie inside the data, in order, without overlap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quicwire_engine::abi::{self, OP_WORDS};

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let words_len = usize::from(n) * OP_WORDS * 8;
    let (word_bytes, data) = rest.split_at(words_len.min(rest.len()));
    let words: Vec<f64> = word_bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let mut end = 0usize;
    for op in abi::ops(data, &words) {
        let Ok(op) = op else { break };
        let start = op.body.as_ptr() as usize - data.as_ptr() as usize;
        assert_eq!(start, end, "bodies follow each other");
        end = start + op.body.len();
        assert!(end <= data.len());
    }
});
