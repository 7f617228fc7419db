//! Codec costs: the frame codec at 64 B / 1 KiB / 64 KiB, and a whole message through each
//! encoding (raw bytes, msgpack via rmp-serde, JSON via serde_json) and the frame codec.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quicwire_core::frame::{put_message, Frame, FrameDecoder};
use serde::{Deserialize, Serialize};

const SIZES: [usize; 3] = [64, 1024, 65_536];
const LIMIT: u64 = 1 << 20;

/// What an agent typically sends: a few fields and an opaque payload.
#[derive(Serialize, Deserialize)]
struct Task {
    id: u64,
    kind: String,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

/// Turns a message into a body.
type Encoder = fn(&Task) -> Vec<u8>;

fn task(size: usize) -> Task {
    Task {
        id: 42,
        kind: "task".into(),
        payload: vec![7; size],
    }
}

fn frame_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    let decoder = FrameDecoder::new(LIMIT);
    for size in SIZES {
        let body = vec![1u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode", size), &body, |b, body| {
            let mut out = BytesMut::with_capacity(size + 16);
            b.iter(|| {
                out.clear();
                put_message(&mut out, black_box(body), LIMIT).unwrap();
            });
        });
        let mut encoded = BytesMut::new();
        put_message(&mut encoded, &body, LIMIT).unwrap();
        g.bench_with_input(BenchmarkId::new("decode", size), &encoded, |b, encoded| {
            b.iter(|| {
                let mut buf = encoded.clone();
                match decoder.decode(black_box(&mut buf)).unwrap() {
                    Some(Frame::Message(m)) => m.len(),
                    other => panic!("{other:?}"),
                }
            });
        });
    }
    g.finish();
}

fn encodings(c: &mut Criterion) {
    let mut g = c.benchmark_group("message");
    let decoder = FrameDecoder::new(LIMIT);
    for size in SIZES {
        let value = task(size);
        g.throughput(Throughput::Bytes(size as u64));
        let encoders: [(&str, Encoder); 3] = [
            ("raw", |t| t.payload.clone()),
            ("msgpack", |t| rmp_serde::to_vec_named(t).unwrap()),
            ("json", |t| serde_json::to_vec(t).unwrap()),
        ];
        for (name, encode) in encoders {
            g.bench_function(BenchmarkId::new(format!("{name}/roundtrip"), size), |b| {
                let mut out = BytesMut::with_capacity(size * 4 + 64);
                b.iter(|| {
                    out.clear();
                    let body = encode(black_box(&value));
                    put_message(&mut out, &body, LIMIT).unwrap();
                    let Some(Frame::Message(m)) = decoder.decode(&mut out).unwrap() else {
                        panic!("not a message")
                    };
                    match name {
                        "raw" => m.len(),
                        "msgpack" => rmp_serde::from_slice::<Task>(&m).unwrap().payload.len(),
                        _ => serde_json::from_slice::<Task>(&m).unwrap().payload.len(),
                    }
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, frame_codec, encodings);
criterion_main!(benches);
