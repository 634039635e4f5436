//! Codec micro-benchmarks: decode and encode each message kind the router handles per message,
//! in each serializer, with a 64-byte payload.

#![allow(missing_docs)] // criterion generates the entry point

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchboard_proto::codec::{decode, encode};
use switchboard_proto::{Dict, Message, Payload, RawValue, Serializer, Value};

fn payload(s: Serializer) -> Payload {
    let args = Value::List(vec![Value::Str("x".repeat(64))]);
    Payload {
        args: Some(RawValue::from_value(s, &args).expect("encode")),
        kwargs: None,
    }
}

fn messages(s: Serializer) -> Vec<(&'static str, Message)> {
    let mut ack = Dict::new();
    ack.insert("acknowledge".into(), true.into());
    vec![
        (
            "call",
            Message::Call {
                request: 1234,
                options: Dict::new(),
                procedure: "com.example.echo".into(),
                payload: payload(s),
            },
        ),
        (
            "invocation",
            Message::Invocation {
                request: 99,
                registration: 7,
                details: Dict::new(),
                payload: payload(s),
            },
        ),
        (
            "yield",
            Message::Yield {
                request: 99,
                options: Dict::new(),
                payload: payload(s),
            },
        ),
        (
            "result",
            Message::Result {
                request: 1234,
                details: Dict::new(),
                payload: payload(s),
            },
        ),
        (
            "publish",
            Message::Publish {
                request: 5678,
                options: ack,
                topic: "com.example.topic".into(),
                payload: payload(s),
            },
        ),
        (
            "event",
            Message::Event {
                subscription: 3,
                publication: 4_503_599_627_370_495,
                details: Dict::new(),
                payload: payload(s),
            },
        ),
        (
            "subscribe",
            Message::Subscribe {
                request: 1,
                options: Dict::new(),
                topic: "com.example.topic".into(),
            },
        ),
    ]
}

fn bench(c: &mut Criterion) {
    for s in Serializer::ALL {
        let mut group = c.benchmark_group(format!("codec/{}", s.name()));
        for (name, msg) in messages(s) {
            let bytes: Bytes = encode(s, &msg).expect("encode");
            group.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
                b.iter(|| decode(s, black_box(bytes)).expect("decode"))
            });
            group.bench_with_input(BenchmarkId::new("encode", name), &msg, |b, msg| {
                b.iter(|| encode(s, black_box(msg)).expect("encode"))
            });
        }
        group.finish();
    }
    // Transcoding a payload between serializers (what a mixed-serializer EVENT costs).
    let msg = Message::Event {
        subscription: 3,
        publication: 4,
        details: Dict::new(),
        payload: payload(Serializer::Json),
    };
    c.bench_function("codec/transcode/event_json_to_cbor", |b| {
        b.iter(|| encode(Serializer::Cbor, black_box(&msg)).expect("encode"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
