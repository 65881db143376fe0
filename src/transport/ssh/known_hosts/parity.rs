//! shipit's known_hosts reading proven against OpenSSH's, on OpenSSH's own test cases.
//!
//! The oracle is OpenSSH itself: `ssh-keygen -l -F NAME -f FILE` lists the lines of FILE that
//! `ssh` would use for NAME. It reads the file with the function `ssh` reads it with
//! (hostfile.c `hostkeys_foreach`), and `-l` makes it parse each key as `ssh` does
//! (`HKF_WANT_PARSE_KEY`, as in `load_hostkeys_file`): without `-l`, lines whose key blob is
//! garbage would be listed although `ssh` skips them. It prints, for each line, its number,
//! `CA` or `REVOKED` for `@cert-authority` and `@revoked` lines (marker lines are listed:
//! `ssh` loads them too, and decides with them after), the key's type and its SHA256
//! fingerprint. shipit must find the same lines, markers and keys: same fingerprint means
//! same key as OpenSSH reads it. The tests need `ssh-keygen` (Debian: openssh-client) and fail
//! without it. The oracle they were written against is OpenSSH 9.2 (Debian 12); OpenSSH 10
//! no longer reads `ssh-dss` keys, and would disagree on the one line that holds one.
//!
//! The names looked up are given as `ssh` looks them up ([`lookup_name`]: lower case,
//! `[host]:port` off port 22). What `ssh` then does with the lines it found (trusted, changed,
//! revoked, the bare name vouching for another port) is [`KnownHosts::check`]'s, tested in
//! known_hosts.rs.
//!
//! Data: `testdata/known_hosts_openssh` is OpenSSH's (regress/unittests/hostkeys/testdata,
//! with test_iterate.c's expectations below); `testdata/known_hosts_cases` is shipit's, for
//! the cases OpenSSH's file lacks, each with the names to probe it with. Last, the pattern
//! tables of OpenSSH's regress/unittests/match/tests.c, against [`names`]'s matcher.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::key::Kind;
use super::names::{match_hostname, match_pattern};
use super::*;
use crate::transport::ssh::fingerprint;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/transport/ssh/testdata")
        .join(name)
}

fn read(file: &Path) -> KnownHosts {
    let mut known = KnownHosts::default();
    known.add(file, &std::fs::read(file).unwrap());
    known
}

/// A line found for a name, as `ssh-keygen -l -F` prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    line: usize,
    /// `CA`, `REVOKED` or empty.
    marker: String,
    /// OpenSSH's short name of the key type (`ED25519`, `RSA`, ...).
    key_type: String,
    /// `SHA256:...`.
    fingerprint: String,
}

/// The lines OpenSSH finds for `name` in `file`.
fn ssh_keygen_finds(file: &Path, name: &str) -> BTreeSet<Found> {
    let output = Command::new("ssh-keygen")
        .args(["-l", "-F", name, "-f"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run ssh-keygen, these tests' oracle ({e}); install the OpenSSH client \
                 (Debian: openssh-client)"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    // 0: found, 1: not found.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "ssh-keygen -l -F {name} -f {}: {}\n{stdout}{}",
        file.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let header = format!("# Host {name} found: line ");
    let mut lines = stdout.lines();
    let mut found = BTreeSet::new();
    while let Some(line) = lines.next() {
        let place = line
            .strip_prefix(&header)
            .unwrap_or_else(|| panic!("unexpected ssh-keygen output: {line:?}"));
        let (number, marker) = place.split_once(' ').unwrap_or((place, ""));
        let key_line = lines.next().expect("a key line after each header");
        let mut key = key_line.split(' ').skip(1);
        found.insert(Found {
            line: number.parse().unwrap(),
            marker: marker.trim().into(),
            key_type: key.next().unwrap_or_default().into(),
            fingerprint: key.next().unwrap_or_default().into(),
        });
    }
    found
}

/// The lines shipit finds for `name`.
fn shipit_finds(known: &KnownHosts, name: &str) -> BTreeSet<Found> {
    known
        .matching(name)
        .map(|e| Found {
            line: e.place.line,
            marker: match e.marker {
                Marker::Plain => "",
                Marker::CertAuthority => "CA",
                Marker::Revoked => "REVOKED",
            }
            .into(),
            key_type: match e.key.kind {
                Kind::Ed25519 => "ED25519",
                Kind::Ed25519Sk => "ED25519-SK",
                Kind::Ecdsa(_) => "ECDSA",
                Kind::EcdsaSk => "ECDSA-SK",
                Kind::Rsa => "RSA",
                Kind::Dsa => "DSA",
            }
            .into(),
            fingerprint: fingerprint(&e.key.blob),
        })
        .collect()
}

/// The OpenSSH version answering, for failure messages.
fn oracle_version() -> String {
    Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Line N of OpenSSH's file is line N + OPENSSH_HEADER of ours.
const OPENSSH_HEADER: usize = 13;

/// The names test_iterate.c looks up (`hostkeys_foreach`'s host or address argument), and the
/// lines of OpenSSH's file it expects them to match, from its `expected_full` table: a line
/// matches the names whose `match_host_p` (prometheus), `match_host_s` (sisyphus),
/// `match_ipv4` (192.0.2.1) or `match_ipv6` (2001:db8::1) is set, and whose status is not
/// `HKF_STATUS_INVALID` when keys are parsed (lines 37 to 42: `ssh` skips them).
const TEST_ITERATE: &[(&str, &[usize])] = &[
    (
        "prometheus.example.com",
        &[7, 8, 9, 12, 13, 14, 21, 24, 27, 34],
    ),
    (
        "sisyphus.example.com",
        &[2, 3, 4, 12, 13, 14, 17, 18, 19, 33],
    ),
    ("192.0.2.1", &[7, 8, 9, 12, 13, 14, 22, 25, 28]),
    ("2001:db8::1", &[7, 8, 9, 12, 13, 14, 23, 26, 29]),
    ("actaeon.example.org", &[]),
    ("tiresias.example.org", &[]),
    ("192.168.0.1", &[]),
    ("::1", &[]),
];

#[test]
fn openssh_test_data_matches_as_test_iterate_and_ssh_keygen_say() {
    let file = data("known_hosts_openssh");
    let known = read(&file);
    for (name, expected) in TEST_ITERATE {
        let shipit = shipit_finds(&known, name);
        let lines: Vec<usize> = shipit.iter().map(|f| f.line - OPENSSH_HEADER).collect();
        assert_eq!(&lines, expected, "test_iterate.c's lines for {name}");
        assert_eq!(
            shipit,
            ssh_keygen_finds(&file, name),
            "shipit (left) and ssh-keygen -l -F {name} (right), {}",
            oracle_version()
        );
    }
}

#[test]
fn openssh_test_data_invalid_lines_are_those_test_iterate_says() {
    let known = read(&data("known_hosts_openssh"));
    let skipped: Vec<usize> = known
        .warnings
        .iter()
        .map(|w| {
            let line = w.split(':').nth(1).unwrap().parse::<usize>().unwrap();
            line - OPENSSH_HEADER
        })
        .collect();
    // test_iterate.c: HKF_STATUS_INVALID, with key parsing.
    assert_eq!(
        skipped,
        (37..=42).collect::<Vec<_>>(),
        "{:#?}",
        known.warnings
    );
}

/// The probes and marked differences of `known_hosts_cases` (see its header).
struct Cases {
    probes: Vec<String>,
    /// Line number: why shipit differs from OpenSSH on it.
    differs: BTreeMap<usize, String>,
}

fn cases(text: &str) -> Cases {
    let mut cases = Cases {
        probes: vec![],
        differs: BTreeMap::new(),
    };
    let mut pending: Option<String> = None;
    for (index, line) in text.split('\n').enumerate() {
        if let Some(names) = line.strip_prefix("# probe: ") {
            cases.probes.extend(names.split(' ').map(String::from));
        } else if let Some(why) = line.strip_prefix("# differs: ") {
            pending = Some(why.into());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            if let Some(why) = pending.take() {
                cases.differs.insert(index + 1, why);
            }
        }
    }
    assert!(pending.is_none(), "a `# differs:` with no line after it");
    cases
}

#[test]
fn case_lines_match_every_probed_name_as_ssh_keygen_says_but_where_marked() {
    let file = data("known_hosts_cases");
    let known = read(&file);
    let cases = cases(&std::fs::read_to_string(&file).unwrap());
    assert!(cases.probes.len() > 50, "{} probes", cases.probes.len());
    let mut unmarked = vec![];
    let mut differing = BTreeSet::new();
    for name in &cases.probes {
        let shipit = shipit_finds(&known, name);
        let openssh = ssh_keygen_finds(&file, name);
        for found in shipit.symmetric_difference(&openssh) {
            differing.insert(found.line);
            if !cases.differs.contains_key(&found.line) {
                let who = if shipit.contains(found) {
                    "shipit only"
                } else {
                    "ssh-keygen only"
                };
                unmarked.push(format!("{name}: {who}: {found:?}"));
            }
        }
    }
    assert!(
        unmarked.is_empty(),
        "shipit and ssh-keygen -l -F ({}) disagree on unmarked lines:\n{}",
        oracle_version(),
        unmarked.join("\n")
    );
    let same: Vec<_> = cases
        .differs
        .iter()
        .filter(|(line, _)| !differing.contains(line))
        .collect();
    assert!(
        same.is_empty(),
        "lines marked `# differs:` on which shipit and OpenSSH agree: {same:?}"
    );
}

/// regress/unittests/match/tests.c (OpenSSH, v1.10 2026/05/31, "Placed in the public
/// domain"), "match_pattern" and "match_pattern wildcard": string, pattern, match.
const MATCH_PATTERN: &[(&str, &str, bool)] = &[
    ("", "", true),
    ("", "aaa", false),
    ("aaa", "", false),
    ("aaa", "aaaa", false),
    ("aaaa", "aaa", false),
    ("abc", "abc", true),
    ("abc", "abd", false),
    ("abc", "abcd", false),
    ("abcd", "abc", false),
    ("", "*", true),
    ("", "**", true),
    ("", "***", true),
    ("", "?", false),
    ("", "*?", false),
    ("", "?*", false),
    ("", "**a*", false),
    ("a", "?", true),
    ("aa", "a?", true),
    ("a", "*", true),
    ("aa", "a*", true),
    ("aa", "?*", true),
    ("aa", "?a", true),
    ("aa", "*a", true),
    ("ba", "a?", false),
    ("ba", "a*", false),
    ("ab", "?a", false),
    ("ab", "*a", false),
    ("aa", "**", true),
    ("ab", "a***b", true),
    ("axb", "a***b", true),
    ("axxb", "a***b", true),
    ("ax", "a***b", false),
    ("abbb", "a*b*b", true),
    ("abbb", "a*b*c", false),
    ("aaaaaaaaac", "a*a*a*a*b", false),
    ("aaaaaaaaab", "a*a*a*a*b", true),
    ("ab", "*b", true),
    ("ab", "*a*", true),
    ("ab", "*a*b", true),
    ("ab", "*a*c", false),
    ("abc", "a?c", true),
    ("abc", "??c", true),
    ("abc", "???", true),
    ("abc", "a?d", false),
    ("ab", "???", false),
    ("abc", "ab*", true),
    ("ab", "ab*", true),
    ("a", "ab*", false),
    ("abc", "ab?", true),
    ("ab", "ab?", false),
    ("abcd", "ab?", false),
    ("abc", "?bc", true),
    ("abc", "?b*", true),
    ("abc", "?c", false),
    ("abc", "a*?c", true),
    ("ac", "a*?c", false),
    ("abbc", "a*?c", true),
    ("abc", "a?*c", true),
    ("ac", "a?*c", false),
    ("abbc", "a?*c", true),
    ("abc", "a*?*c", true),
    ("ac", "a*?*c", false),
    ("abc", "?*c", true),
    ("ac", "?*c", true),
    ("c", "?*c", false),
    ("abc", "*?c", true),
    ("ac", "*?c", true),
    ("c", "*?c", false),
    ("abc", "a?*", true),
    ("ab", "a?*", true),
    ("a", "a?*", false),
    ("abc", "a*?", true),
    ("ab", "a*?", true),
    ("a", "a*?", false),
    ("abb", "a*b", true),
    ("abbc", "a*b", false),
];

#[test]
fn match_pattern_answers_openssh_tables() {
    for (text, pattern, expected) in MATCH_PATTERN {
        assert_eq!(
            match_pattern(text.as_bytes(), pattern.as_bytes()),
            *expected,
            "match_pattern({text:?}, {pattern:?})"
        );
    }
}

/// OpenSSH's original `match_pattern` (Tatu Ylonen's, match.c until 2026), kept by tests.c as
/// `match_pattern_original` to check the current one against: ported to Rust here, a derived
/// version marked as such, as its author asks ("can be used freely for any purpose").
fn match_pattern_original(mut s: &[u8], mut pattern: &[u8]) -> bool {
    loop {
        let Some(&p) = pattern.first() else {
            return s.is_empty();
        };
        if p == b'*' {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
            let Some(&next) = pattern.first() else {
                return true;
            };
            if next != b'?' {
                return (0..s.len())
                    .any(|i| s[i] == next && match_pattern_original(&s[i + 1..], &pattern[1..]));
            }
            return (0..s.len()).any(|i| match_pattern_original(&s[i..], pattern));
        }
        let Some(&c) = s.first() else {
            return false;
        };
        if p != b'?' && p != c {
            return false;
        }
        s = &s[1..];
        pattern = &pattern[1..];
    }
}

/// Every word of up to `max` letters of `alphabet`.
fn words(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut all = vec![vec![]];
    let mut last = vec![vec![]];
    for _ in 0..max {
        last = last
            .iter()
            .flat_map(|w: &Vec<u8>| {
                alphabet.iter().map(move |c| {
                    let mut w = w.clone();
                    w.push(*c);
                    w
                })
            })
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

#[test]
fn match_pattern_agrees_with_openssh_original_on_every_short_pattern() {
    // tests.c "match_pattern exhaustive original": patterns over `abx?*`, inputs over `abc`
    // (shorter here: a debug build is slow). Then inputs holding `*` and `?` themselves,
    // which tests.c does not try: a `*` in the text is no wildcard.
    let patterns = words(b"abx?*", 5);
    for (inputs, max) in [(&b"abc"[..], 5), (&b"a*?"[..], 4)] {
        for input in words(inputs, max) {
            for pattern in &patterns {
                assert_eq!(
                    match_pattern(&input, pattern),
                    match_pattern_original(&input, pattern),
                    "input {:?}, pattern {:?}",
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(pattern)
                );
            }
        }
    }
}

/// tests.c "match_pattern_list" and "match_pattern_list lowercase": string, patterns,
/// `dolower`, OpenSSH's answer (1 a match, 0 none, -1 a negated pattern matched), then
/// whether known_hosts takes it for a match. known_hosts uses `match_hostname`: that is
/// `match_pattern_list` with `dolower` on a lower-cased host, and takes only 1.
const MATCH_PATTERN_LIST: &[(&str, &str, bool, i32, bool)] = &[
    ("", "", false, 0, false),
    ("", "*", false, 1, true),
    ("", "!*", false, -1, false),
    ("", "!a,*", false, 1, true),
    ("", "*,!a", false, 1, true),
    ("", "a,!*", false, -1, false),
    ("", "!*,a", false, -1, false),
    ("a", "", false, 0, false),
    ("a", "*", false, 1, true),
    ("a", "!*", false, -1, false),
    ("a", "!a", false, -1, false),
    // Commented out in tests.c ("XXX negated", written as 1): a negation alone is no match.
    ("a", "!b", false, 0, false),
    ("a", "!a,*", false, -1, false),
    ("b", "!a,*", false, 1, true),
    ("a", "*,!a", false, -1, false),
    ("b", "*,!a", false, 1, true),
    ("a", "a,!*", false, -1, false),
    ("b", "a,!*", false, -1, false),
    ("a", "a,!a", false, -1, false),
    // Commented out in tests.c ("XXX negated", written as 1).
    ("b", "a,!a", false, 0, false),
    ("a", "!*,a", false, -1, false),
    ("b", "!*,a", false, -1, false),
    // Case: host names are compared in lower case, whatever `dolower` says to
    // match_pattern_list; `abc` and `ABC` are one host.
    ("abc", "ABC", false, 0, true),
    ("ABC", "abc", false, 0, true),
    ("abc", "ABC", true, 1, true),
    ("ABC", "abc", true, 0, true),
];

#[test]
fn host_pattern_lists_answer_openssh_tables() {
    for (host, list, dolower, openssh, expected) in MATCH_PATTERN_LIST {
        assert_eq!(
            match_hostname(host.as_bytes(), list.as_bytes()),
            *expected,
            "match_hostname({host:?}, {list:?}); match_pattern_list(.., {dolower}) is {openssh}"
        );
    }
}

#[test]
fn a_pattern_of_1023_bytes_makes_the_whole_list_match_nothing() {
    // match.c match_pattern_list: `sub[1024]`, and "If subpattern too long, return failure".
    let long = "a".repeat(1023);
    assert!(!match_hostname(b"x", format!("x,{long}").as_bytes()));
    assert!(!match_hostname(long.as_bytes(), long.as_bytes()));
    let fine = "a".repeat(1022);
    assert!(match_hostname(b"x", format!("{fine},x").as_bytes()));
    assert!(match_hostname(fine.as_bytes(), fine.as_bytes()));
}
