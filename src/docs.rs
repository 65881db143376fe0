//! The book (`docs/`) and the README, checked against the program they describe: every `shipit`
//! command line in a shell example parses with the real clap parser, every `shipit.toml` example
//! loads with the real config loader, every command has a page with its options table generated
//! from clap, and every link between pages (and to a heading's anchor) resolves. The
//! configuration tables are checked by `config::reference`.
//!
//! Code blocks are told apart by their info string: ```` ```sh ````, `shell`, `bash` and
//! `console` are shell examples; ```` ```toml ```` is a whole `shipit.toml`; and
//! ```` ```toml,fragment ```` is a piece of one (a table or two, as a page shows them), which is
//! loaded inside a minimal configuration: a `[project]` named `hello` unless it has one, and
//! `deploy_to`, `environment` and `hosts` for each target it names unless it sets them.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use crate::cli::Cli;
use crate::config::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every page of the book, sorted, with its text.
fn pages() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("docs/src"), &mut out);
    out.sort();
    out
}

/// The book's pages and the README.
fn documents() -> Vec<(PathBuf, String)> {
    let readme = root().join("README.md");
    let mut documents = pages();
    documents.push((readme.clone(), std::fs::read_to_string(readme).unwrap()));
    documents
}

/// A fenced code block: its info string, the line it starts on, and its text.
struct Block<'a> {
    info: &'a str,
    line: usize,
    text: String,
}

/// The fenced code blocks of a Markdown text (```` ``` ```` fences, as the book writes them).
fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim(),
                    line: index + 1,
                    text: String::new(),
                })
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.extend(open.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Splits a shell line into words and operators, as `sh` would for a simple example: quotes,
/// backslashes and `#` comments; `|`, `||`, `&&`, `;` and `&` end a command, and `>`/`<`
/// redirections are dropped with their file.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word: Option<String> = None;
    let mut redirect = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '#' if word.is_none() => break,
            ' ' | '\t' => end_word(&mut word, &mut commands, &mut redirect),
            '|' | '&' | ';' => {
                end_word(&mut word, &mut commands, &mut redirect);
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                commands.push(Vec::new());
            }
            '>' | '<' => {
                end_word(&mut word, &mut commands, &mut redirect);
                redirect = true;
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut commands, &mut redirect);
    commands.retain(|c| !c.is_empty());
    commands
}

/// Ends the word being read: a word of the command, or the file of a redirection.
fn end_word(word: &mut Option<String>, commands: &mut [Vec<String>], redirect: &mut bool) {
    if let Some(w) = word.take() {
        if *redirect {
            *redirect = false;
        } else if let Some(command) = commands.last_mut() {
            command.push(w);
        }
    }
}

/// Every `shipit` command of the shell examples: where it is, and its words.
fn shipit_commands() -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for (path, text) in documents() {
        for block in blocks(&text) {
            let info = block.info.split(',').next().unwrap_or_default();
            if !["sh", "shell", "bash", "console"].contains(&info) {
                continue;
            }
            for (offset, line) in block.text.lines().enumerate() {
                let line = line.trim_start().trim_start_matches("$ ");
                for words in shell_commands(line) {
                    if words[0] == "shipit" {
                        let place = format!("{}:{}", path.display(), block.line + 1 + offset);
                        found.push((place, words));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn the_shell_splitter_reads_the_examples_as_sh_does() {
    assert_eq!(
        shell_commands(r#"shipit config --json | jq '.a b' # note"#),
        [vec!["shipit", "config", "--json"], vec!["jq", ".a b"]]
    );
    assert_eq!(
        shell_commands(r#"cd x && shipit lock -m "a \"b\"" > out.txt; true"#),
        [
            vec!["cd", "x"],
            vec!["shipit", "lock", "-m", "a \"b\""],
            vec!["true"]
        ]
    );
}

#[test]
fn every_shipit_command_in_the_docs_parses() {
    let commands = shipit_commands();
    assert!(
        commands.len() >= 50,
        "only {} commands found",
        commands.len()
    );
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|(place, words)| {
            Cli::try_parse_from(words)
                .err()
                .filter(|e| {
                    !matches!(
                        e.kind(),
                        clap::error::ErrorKind::DisplayHelp
                            | clap::error::ErrorKind::DisplayVersion
                    )
                })
                .map(|e| format!("{place}: `{}`: {}", words.join(" "), e.render()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `fragment` inside the minimal configuration it stands in: the keys a `[project]` and each
/// target must have are added where the fragment leaves them out, as text (under the table's
/// header when the fragment has one, else in a header of their own after it), so the fragment
/// is loaded as it is written.
fn completed(fragment: &str) -> Result<String, String> {
    let table: toml::Table = fragment.parse().map_err(|e| format!("not TOML: {e}"))?;
    let mut tables = vec![(
        "project".to_string(),
        table.get("project"),
        "name = \"hello\"\n",
    )];
    if let Some(toml::Value::Table(targets)) = table.get("targets") {
        for (name, target) in targets {
            let required = "deploy_to = \"/srv/hello\"\nenvironment = \"production\"\n\
                            hosts = [\"deploy@web1.example.com\"]\n";
            tables.push((format!("targets.{name}"), Some(target), required));
        }
    }
    let mut text = fragment.to_string();
    for (header, table, required) in tables {
        let missing: String = required
            .lines()
            .filter(|line| {
                let key = line.split(' ').next().unwrap_or_default();
                table.and_then(|t| t.get(key)).is_none()
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let line = format!("[{header}]\n");
        match text.find(&line) {
            Some(at) => text.insert_str(at + line.len(), &missing),
            None => text = format!("{text}\n{line}{missing}"),
        }
    }
    Ok(text)
}

#[test]
fn every_shipit_toml_in_the_docs_loads() {
    let project = tempfile::tempdir().unwrap();
    let mut loaded = 0;
    let mut failures = Vec::new();
    for (path, text) in documents() {
        for block in blocks(&text) {
            let place = format!("{}:{}", path.display(), block.line);
            let text = match block.info {
                "toml" => Ok(block.text.clone()),
                "toml,fragment" => completed(&block.text),
                _ => continue,
            };
            let result = text.and_then(|text| {
                Config::parse(Path::new("shipit.toml"), project.path(), &text)
                    .map_err(|e| e.to_string())
            });
            match result {
                Ok(_) => loaded += 1,
                Err(e) => failures.push(format!("{place} ({}): {e}", block.info)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        loaded >= 15,
        "only {loaded} shipit.toml examples were loaded"
    );
}

/// mdBook's anchor of a heading: its text without Markdown, lower case, spaces as `-`, and
/// nothing but letters, digits, `-` and `_`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The lines of a page outside its code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The anchors of a page's headings.
fn anchors(text: &str) -> Vec<String> {
    prose(text)
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

/// The targets of a page's inline links `[text](target)`, outside code.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            // `[x](y)` inside inline code is code, not a link.
            if rest[..at].matches('`').count() % 2 == 0 {
                out.push(after[..end].to_string());
            }
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_link_and_anchor_resolves() {
    let documents = documents();
    let mut checked = 0;
    let mut broken = Vec::new();
    for (path, text) in &documents {
        for link in links(text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                path.clone()
            } else {
                path.parent().unwrap().join(file)
            };
            checked += 1;
            let Ok(target) = target.canonicalize() else {
                broken.push(format!("{}: {link}: no such file", path.display()));
                continue;
            };
            if fragment.is_empty() {
                continue;
            }
            let page = documents
                .iter()
                .find(|(p, _)| p.canonicalize().ok().as_ref() == Some(&target));
            match page {
                Some((_, text)) if anchors(text).iter().any(|a| a == fragment) => {}
                _ => broken.push(format!("{}: {link}: no such heading", path.display())),
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert!(checked >= 60, "only {checked} links were checked");
}

#[test]
fn every_page_is_in_the_summary() {
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).unwrap();
    let listed = links(&summary);
    let src = root().join("docs/src");
    let missing: Vec<String> = pages()
        .into_iter()
        .map(|(path, _)| path.strip_prefix(&src).unwrap().display().to_string())
        .filter(|page| page != "SUMMARY.md" && !listed.contains(page))
        .collect();
    assert!(missing.is_empty(), "not in SUMMARY.md: {missing:?}");
}

/// The options table of a command, from its clap definition.
fn options(command: &clap::Command) -> String {
    let mut out = String::from("| option | meaning |\n| --- | --- |\n");
    for arg in command.get_arguments() {
        if arg.is_global_set()
            || arg.is_hide_set()
            || ["help", "version"].contains(&arg.get_id().as_str())
        {
            continue;
        }
        let values = arg
            .get_value_names()
            .map(|names| names.join(" "))
            .unwrap_or_default();
        let mut name = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => values.clone(),
        };
        if arg.get_long().is_some() && arg.get_action().takes_values() && !values.is_empty() {
            name = format!("{name} {values}");
        }
        let mut help = arg
            .get_help()
            .map(ToString::to_string)
            .unwrap_or_default()
            .replace('\n', " ");
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        if !possible.is_empty() && arg.get_action().takes_values() {
            help = format!("{help} (one of {})", possible.join(", "));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && arg.get_action().takes_values() {
            help = format!("{help} [default: {}]", defaults.join(","));
        }
        out.push_str(&format!("| `{name}` | {} |\n", help.replace('|', "\\|")));
    }
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {} |\n",
            sub.get_name(),
            about.replace('|', "\\|")
        ));
    }
    out
}

const OPTIONS_START: &str = "<!-- options: ";
const OPTIONS_END: &str = "<!-- end of options -->\n";

/// Every command has a page in `docs/src/commands`, and its options table is clap's.
#[test]
fn every_command_has_a_page_with_its_options() {
    let mut cli = Cli::command();
    cli.build();
    let mut stale = Vec::new();
    let mut checked = 0;
    for command in cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
    {
        let name = command.get_name();
        let path = root().join(format!("docs/src/commands/{name}.md"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("shipit {name} has no page {}: {e}", path.display()));
        let marker = format!("{OPTIONS_START}{name} -->\n");
        let start = text
            .find(&marker)
            .unwrap_or_else(|| panic!("{}: no `{}`", path.display(), marker.trim()))
            + marker.len();
        let end = start + text[start..].find(OPTIONS_END).expect("an end of options");
        let wanted = options(command);
        checked += 1;
        if text[start..end] == wanted {
            continue;
        }
        if std::env::var_os("SHIPIT_BLESS").is_some() {
            std::fs::write(&path, format!("{}{wanted}{}", &text[..start], &text[end..])).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(checked >= 15, "only {checked} commands");
    assert!(
        stale.is_empty(),
        "options tables are stale in {stale:?}; rewrite them with `SHIPIT_BLESS=1 cargo test --lib docs::`"
    );
}

/// The README's first lines are the two newcomer commands, and `.ci/run` runs the second.
#[test]
fn the_readme_starts_with_the_two_newcomer_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first = blocks(&readme).into_iter().next().expect("a code block");
    let commands: Vec<&str> = first
        .text
        .lines()
        .map(|line| line.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(
        commands,
        ["bash tests/example/demo.sh", "bash .ci/setup && cargo test"]
    );
    assert!(first.line <= 4, "the commands come first");
    assert!(root().join("tests/example/demo.sh").exists());
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l == "bash .ci/setup") && ci.lines().any(|l| l == "cargo test"));
}

#[test]
fn the_parser_used_here_rejects_what_shipit_rejects() {
    assert!(Cli::try_parse_from(["shipit", "deploy", "--target", "t", "--no-such-flag"]).is_err());
    assert!(completed("[targets.t]\nbatch = 0\n")
        .and_then(
            |t| Config::parse(Path::new("shipit.toml"), Path::new("."), &t)
                .map_err(|e| e.to_string())
        )
        .is_err());
}

/// The exit status table of the failures page lists exactly the statuses shipit exits with.
#[test]
fn the_exit_status_table_is_the_programs() {
    use crate::error::*;
    let page = std::fs::read_to_string(root().join("docs/src/failures.md")).unwrap();
    let documented: Vec<i32> = page
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next()?.parse().ok())
        .collect();
    let statuses = [
        EXIT_OK,
        EXIT_FAILED,
        EXIT_USAGE,
        EXIT_CONNECTION,
        EXIT_LOCKED,
        EXIT_REFUSED,
        EXIT_INTERRUPTED,
    ];
    assert_eq!(documented, statuses);
}
