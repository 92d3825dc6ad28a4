//! Every rule file under `tests/rulefmt/` is checked here and by `promtool check rules`
//! (Prometheus 2.42): both accept it or both refuse it, and each problem promtool reports
//! is reported here in the same words (promtool's `line:col:` positions aside). Files named
//! `thanos-*` use what Thanos adds to the format (`partial_response_strategy`,
//! `keep_firing_for`), which promtool 2.42 refuses: a valid one is accepted here, a wrong
//! value refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use rthanos_rule::rulefmt::{RuleFileError, read_file};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rulefmt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// promtool's problems for `path`, positions and the file name stripped; `None` if accepted.
fn promtool(path: &Path) -> Option<Vec<String>> {
    let out = Command::new(rthanos_testkit::promtool())
        .args(["check", "rules"])
        .arg(path)
        .output()
        .expect("promtool check rules");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return None;
    }
    let prefix = format!("{}: ", path.display());
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|l| {
                // Drop the `4:13: 5:12: ` positions.
                let mut rest = l;
                while let Some((head, tail)) = rest.split_once(": ") {
                    let is_position = head
                        .split(':')
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                    if !is_position {
                        break;
                    }
                    rest = tail;
                }
                rest.to_string()
            })
            .collect(),
    )
}

#[test]
fn rule_files_are_checked_as_promtool_checks_them() {
    let files = fixtures();
    assert!(files.len() > 10);
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = read_file(path);
        if name.starts_with("thanos-") {
            let valid = !name.contains("bad");
            assert_eq!(ours.is_ok(), valid, "{name}: {ours:?}");
            continue;
        }
        match (promtool(path), ours) {
            (None, Ok(_)) => {}
            (Some(theirs), Err(RuleFileError::Invalid { problems, .. })) => {
                for problem in &theirs {
                    // The PromQL parser's own words differ; the rule and the cause agree.
                    let matched = match problem.split_once("could not parse expression: ") {
                        Some((head, _)) => problems.iter().any(|p| p.starts_with(head)),
                        None => problems.contains(problem),
                    };
                    assert!(
                        matched,
                        "{name}: promtool says {problem:?}, we say {problems:?}"
                    );
                }
            }
            // Structural errors (a wrong type, an unknown field, a bad duration): both refuse;
            // a duration's message is the same.
            (Some(theirs), Err(e @ RuleFileError::Yaml { .. })) => {
                let ours = e.to_string();
                for problem in theirs.iter().filter(|p| p.contains("duration")) {
                    assert!(
                        ours.contains(problem.as_str()),
                        "{name}: {problem:?} vs {ours}"
                    );
                }
            }
            (Some(theirs), Err(e)) => panic!("{name}: promtool {theirs:?}, ours {e}"),
            (None, Err(e)) => panic!("{name}: promtool accepts it, we refuse: {e}"),
            (Some(theirs), Ok(_)) => panic!("{name}: promtool refuses it ({theirs:?}), we accept"),
        }
    }
}

#[test]
fn a_valid_file_reads_into_its_groups_and_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rulefmt");
    let file = read_file(&dir.join("good.yml")).expect("good.yml");
    assert_eq!(file.rules(), 2);
    let group = &file.groups[0];
    assert_eq!(group.name, "a");
    let alert = &group.rules[1];
    assert_eq!(
        alert.kind,
        rthanos_rule::rulefmt::RuleKind::Alert("Down".into())
    );
    assert_eq!(alert.for_.as_millis(), 300_000);
    assert_eq!(
        alert.labels.get("severity").map(String::as_str),
        Some("page")
    );
    let thanos = read_file(&dir.join("thanos-partial-response.yml")).expect("thanos");
    assert_eq!(
        thanos.groups[0].partial_response_strategy,
        rthanos_rule::rulefmt::PartialResponseStrategy::Warn
    );
}
