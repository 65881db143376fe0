//! The parsers of what a remote script prints: `script::parse_line` and
//! `releases::parse_inventory`.
//!
//! Input: `NONCE \0 LINE` (no 0 byte: empty nonce, whole input is the line); invalid UTF-8 is
//! replaced, as the transports do with `from_utf8_lossy`.
//!
//! Checks for `parse_line`: no panic; a line that does not start with `@@shipit:NONCE ` is
//! always `Event::Output(line)` (output cannot forge markers); a marker event carries text that
//! came from the line.
//!
//! Checks for `parse_inventory` over facts built from the input's lines (`key value`, split at the
//! first space): no panic; releases sorted by id; at most one is current and it is `Live`; no
//! more releases than `release:` keys; every id prints as a valid id that parses back to itself.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shipit::plan::releases::parse_inventory;
use shipit::plan::script::{parse_line, Event, MARKER};
use shipit::release::{ReleaseId, State};

fuzz_target!(|data: &[u8]| {
    let (nonce, line) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let nonce = String::from_utf8_lossy(nonce);
    let line = String::from_utf8_lossy(line);
    check_line(&nonce, &line);
    // Output arrives line by line: feed each line too, as the transports do.
    for l in line.lines() {
        check_line(&nonce, l);
    }

    let whole = String::from_utf8_lossy(data);
    let mut facts = BTreeMap::new();
    for l in whole.lines() {
        let (key, value) = l.split_once(' ').unwrap_or((l, ""));
        facts.insert(key.to_string(), value.to_string());
    }
    check_inventory(&facts);
});

fn check_line(nonce: &str, line: &str) {
    let prefix = format!("{MARKER}{nonce} ");
    let event = parse_line(nonce, line);
    let Some(rest) = line.strip_prefix(&prefix) else {
        assert_eq!(
            event,
            Event::Output(line.to_string()),
            "unmarked line {line:?} (nonce {nonce:?}) parsed as a marker"
        );
        return;
    };
    match &event {
        Event::Output(text) => assert_eq!(text, line),
        Event::Begin(step) => assert!(rest == "begin" || rest == format!("begin {step}")),
        Event::End(step) => assert!(rest == "end" || rest == format!("end {step}")),
        Event::Fail(step, _) => assert!(rest.starts_with(&format!("fail {step} "))),
        Event::Fact(key, value) => assert!(
            (rest == "fact" && key.is_empty() && value.is_empty())
                || (rest == format!("fact {key}") && value.is_empty())
                || rest == format!("fact {key} {value}"),
            "{rest:?} -> {event:?}"
        ),
        Event::Done => assert!(rest == "done" || rest.starts_with("done ")),
        Event::Gate => assert!(rest == "gate" || rest.starts_with("gate ")),
    }
}

fn check_inventory(facts: &BTreeMap<String, String>) {
    let listed = parse_inventory(facts);
    let release_keys = facts.keys().filter(|k| k.starts_with("release:")).count();
    // A directory name is an id only if it is exactly one: the id must print back as the name,
    // or pruning and rollback would act on a different directory than the one listed.
    for key in facts.keys() {
        if let Some(id) = key.strip_prefix("release:").and_then(ReleaseId::parse) {
            assert_eq!(
                format!("release:{id}"),
                *key,
                "directory name {key:?} is accepted as a different release id"
            );
        }
    }
    assert!(listed.len() <= release_keys);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].release.id <= w[1].release.id),
        "not sorted"
    );
    let current: Vec<_> = listed.iter().filter(|l| l.release.current).collect();
    for l in &current {
        assert_eq!(l.release.state, State::Live);
    }
    let current_ids: std::collections::BTreeSet<_> = current.iter().map(|l| l.release.id).collect();
    assert!(current_ids.len() <= 1, "more than one current release id");
    for l in &listed {
        let printed = l.release.id.to_string();
        assert_eq!(printed.len(), 14, "id prints as {printed:?}");
        assert_eq!(
            ReleaseId::parse(&printed),
            Some(l.release.id),
            "id {printed} does not parse back"
        );
        if let Some(v) = &l.venv {
            assert!(!v.is_empty() && v != "-" && !v.contains(' '));
        }
        if let Some(r) = &l.revision {
            assert!(!r.is_empty() && r != "-" && !r.contains(' '));
        }
    }
}
