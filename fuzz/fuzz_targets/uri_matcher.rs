//! URIs and the pattern index: parsing under each match policy, and the index answering exactly
//! what matching every pattern one by one answers (exact, prefix and wildcard together).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::{Uri, UriMatch};
use switchboard_router::matcher::PatternIndex;

const POLICIES: [UriMatch; 3] = [UriMatch::Exact, UriMatch::Prefix, UriMatch::Wildcard];

fuzz_target!(|text: &str| {
    // Lines: patterns, each prefixed by a policy digit; the last line is the topic.
    let mut lines: Vec<&str> = text.lines().collect();
    let Some(topic) = lines.pop() else {
        return;
    };
    let _ = Uri::parse_strict(topic, UriMatch::Exact);
    let mut index: PatternIndex<usize> = PatternIndex::default();
    let mut patterns: Vec<(Uri, UriMatch)> = Vec::new();
    for line in lines.iter().take(32) {
        let Some((digit, pattern)) = line.split_at_checked(1) else {
            continue;
        };
        let policy = POLICIES[usize::from(digit.as_bytes()[0] % 3)];
        let Ok(uri) = Uri::parse_loose(pattern, policy) else {
            continue;
        };
        if index.get(pattern, policy).is_some() {
            continue;
        }
        index.insert(uri.clone(), policy, patterns.len());
        patterns.push((uri, policy));
    }
    let mut found: Vec<usize> = Vec::new();
    index.for_each_match(topic, |_, _, n| found.push(*n));
    found.sort_unstable();
    let expected: Vec<usize> = patterns
        .iter()
        .enumerate()
        .filter(|(_, (uri, policy))| uri.matches(*policy, topic))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(found, expected, "topic {topic:?}, patterns {patterns:?}");
});
