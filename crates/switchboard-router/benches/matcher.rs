//! Matcher micro-benchmarks: one lookup (every match for a publish, the best match for a call)
//! against indexes of 1 to 100k exact, prefix and wildcard patterns.

#![allow(missing_docs)] // criterion generates the entry point

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchboard_proto::{Uri, UriMatch};
use switchboard_router::matcher::PatternIndex;

const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];

/// `n` patterns of one policy, spread over a realistic URI shape `com.app<i%100>.<kind>.<i>`.
fn index(n: usize, policy: UriMatch) -> PatternIndex<u64> {
    let mut index = PatternIndex::new();
    for i in 0..n {
        let pattern = match policy {
            UriMatch::Exact => format!("com.app{}.sensor.{i}", i % 100),
            UriMatch::Prefix => format!("com.app{}.sensor.{i}.", i % 100),
            UriMatch::Wildcard => format!("com.app{}..{i}", i % 100),
        };
        let uri = Uri::parse_loose(&pattern, policy).expect("valid pattern");
        index.insert(uri, policy, i as u64);
    }
    index
}

fn bench(c: &mut Criterion) {
    for policy in [UriMatch::Exact, UriMatch::Prefix, UriMatch::Wildcard] {
        let mut group = c.benchmark_group(format!("matcher/{}", policy.as_str()));
        for n in SIZES {
            let index = index(n, policy);
            // A topic that matches exactly one pattern, in the middle of the index.
            let i = n / 2;
            let topic = match policy {
                UriMatch::Exact => format!("com.app{}.sensor.{i}", i % 100),
                UriMatch::Prefix => format!("com.app{}.sensor.{i}.temp", i % 100),
                UriMatch::Wildcard => format!("com.app{}.sensor.{i}", i % 100),
            };
            group.bench_with_input(BenchmarkId::new("all_matches", n), &topic, |b, topic| {
                b.iter(|| {
                    let mut hits = 0u64;
                    index.for_each_match(black_box(topic), |_, _, v| hits += v);
                    hits
                })
            });
            group.bench_with_input(BenchmarkId::new("best_match", n), &topic, |b, topic| {
                b.iter(|| index.best_match(black_box(topic)).map(|m| *m.2))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
