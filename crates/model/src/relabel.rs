//! Prometheus relabelling (`relabel_configs`), as Thanos applies it to select blocks
//! (`--selector.relabel-config`): each block's external labels plus `__block_id` go through
//! the rules; a block whose labels come out empty, or that a rule drops, is not served.
//! The semantics are Prometheus's: regexes are anchored, the default action is `replace`
//! with `(.*)` → `$1`, and `hashmod` takes the MD5 of the joined source values.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Labels;

/// What a rule does.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sets `target_label` to the expanded replacement when the regex matches.
    #[default]
    Replace,
    /// Keeps the target only if the regex matches.
    Keep,
    /// Drops the target if the regex matches.
    Drop,
    /// Sets `target_label` to the hash of the source values modulo `modulus`.
    HashMod,
    /// Copies labels whose names match to the names the replacement makes.
    LabelMap,
    /// Removes labels whose names match.
    LabelDrop,
    /// Removes labels whose names do not match.
    LabelKeep,
    /// Sets `target_label` to the lower-cased source value.
    Lowercase,
    /// Sets `target_label` to the upper-cased source value.
    Uppercase,
    /// Keeps the target if the source value equals `target_label`'s value.
    KeepEqual,
    /// Drops the target if the source value equals `target_label`'s value.
    DropEqual,
}

/// One relabelling rule, as written in YAML.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Labels whose values are joined to form the source value.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values (default `;`).
    pub separator: Option<String>,
    /// The regex (default `(.*)`), anchored at both ends.
    pub regex: Option<String>,
    /// For `hashmod`.
    #[serde(default)]
    pub modulus: u64,
    /// The label written.
    #[serde(default)]
    pub target_label: String,
    /// What is written (default `$1`).
    pub replacement: Option<String>,
    /// The action (default `replace`).
    #[serde(default)]
    pub action: Action,
}

/// A relabelling configuration that does not hold.
#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    /// The YAML does not parse or names unknown fields.
    #[error("relabel config: {0}")]
    Yaml(String),
    /// A rule is invalid.
    #[error("relabel config rule {index}: {reason}")]
    Rule {
        /// Position of the rule (0-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A checked rule.
#[derive(Clone, Debug)]
struct Rule {
    source_labels: Vec<String>,
    separator: String,
    regex: regex::Regex,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: Action,
}

/// Checked relabelling rules.
#[derive(Clone, Debug, Default)]
pub struct Relabel {
    rules: Vec<Rule>,
}

impl Relabel {
    /// Parses a YAML list of rules (empty text: no rules).
    pub fn from_yaml(text: &str) -> Result<Self, RelabelError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let configs: Vec<RuleConfig> =
            serde_yaml::from_str(text).map_err(|e| RelabelError::Yaml(e.to_string()))?;
        Self::new(configs)
    }

    /// Checks `configs` as Prometheus does.
    pub fn new(configs: Vec<RuleConfig>) -> Result<Self, RelabelError> {
        let mut rules = Vec::with_capacity(configs.len());
        for (index, c) in configs.into_iter().enumerate() {
            let error = |reason: String| RelabelError::Rule { index, reason };
            let pattern = c.regex.unwrap_or_else(|| "(.*)".into());
            let regex =
                crate::regex_cache::compiled(&format!("^(?s:{})$", crate::go_regex(&pattern)))
                    .map_err(|e| error(format!("invalid regex {pattern:?}: {e}")))?;
            let needs_target = matches!(
                c.action,
                Action::Replace
                    | Action::HashMod
                    | Action::Lowercase
                    | Action::Uppercase
                    | Action::KeepEqual
                    | Action::DropEqual
            );
            if needs_target && c.target_label.is_empty() {
                return Err(error(format!("{:?} needs a target_label", c.action)));
            }
            if c.action == Action::HashMod && c.modulus == 0 {
                return Err(error("hashmod needs a modulus".into()));
            }
            rules.push(Rule {
                source_labels: c.source_labels,
                separator: c.separator.unwrap_or_else(|| ";".into()),
                regex,
                modulus: c.modulus,
                target_label: c.target_label,
                replacement: c.replacement.unwrap_or_else(|| "$1".into()),
                action: c.action,
            });
        }
        Ok(Self { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The labels after every rule, or `None` when a rule drops the target or no label is
    /// left.
    pub fn process(&self, labels: &Labels) -> Option<Labels> {
        let mut current: BTreeMap<String, String> = labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for rule in &self.rules {
            if !rule.apply(&mut current) {
                return None;
            }
        }
        current.retain(|_, v| !v.is_empty());
        (!current.is_empty()).then(|| Labels::from_pairs(current))
    }
}

impl Rule {
    /// Applies the rule; `false` drops the target.
    fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let source = self
            .source_labels
            .iter()
            .map(|name| labels.get(name).map_or("", String::as_str))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            Action::Keep => self.regex.is_match(&source),
            Action::Drop => !self.regex.is_match(&source),
            Action::KeepEqual => {
                labels.get(&self.target_label).map_or("", String::as_str) == source
            }
            Action::DropEqual => {
                labels.get(&self.target_label).map_or("", String::as_str) != source
            }
            Action::Replace => {
                if let Some(captures) = self.regex.captures(&source) {
                    let mut target = String::new();
                    captures.expand(&self.target_label, &mut target);
                    let mut value = String::new();
                    captures.expand(&self.replacement, &mut value);
                    if crate::is_valid_label_name(&target) {
                        if value.is_empty() {
                            labels.remove(&target);
                        } else {
                            labels.insert(target, value);
                        }
                    }
                }
                true
            }
            Action::Lowercase => {
                set(labels, &self.target_label, source.to_lowercase());
                true
            }
            Action::Uppercase => {
                set(labels, &self.target_label, source.to_uppercase());
                true
            }
            Action::HashMod => {
                let value = md5_tail(&source) % self.modulus;
                set(labels, &self.target_label, value.to_string());
                true
            }
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(name, value)| {
                        let captures = self.regex.captures(name)?;
                        let mut new_name = String::new();
                        captures.expand(&self.replacement, &mut new_name);
                        Some((new_name, value.clone()))
                    })
                    .collect();
                labels.extend(mapped);
                true
            }
            Action::LabelDrop => {
                labels.retain(|name, _| !self.regex.is_match(name));
                true
            }
            Action::LabelKeep => {
                labels.retain(|name, _| self.regex.is_match(name));
                true
            }
        }
    }
}

/// The last 8 bytes of the MD5 of `value`, big-endian: Prometheus's hashmod hash.
fn md5_tail(value: &str) -> u64 {
    use md5::Digest;
    let digest = md5::Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(tail)
}

fn set(labels: &mut BTreeMap<String, String>, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cluster: &str, id: &str) -> Labels {
        Labels::from_pairs([("cluster", cluster), ("__block_id", id)])
    }

    #[test]
    fn keep_drop_and_replace_as_prometheus() -> Result<(), RelabelError> {
        let relabel = Relabel::from_yaml(
            "- source_labels: [cluster]\n  regex: eu.*\n  action: keep\n\
             - source_labels: [cluster]\n  regex: '(.*)-(\\d+)'\n  target_label: region\n  replacement: $1\n\
             - source_labels: [cluster]\n  regex: eu-2\n  action: drop\n",
        )?;
        let kept = relabel.process(&block("eu-1", "01A"));
        assert_eq!(kept.as_ref().and_then(|l| l.get("region")), Some("eu"));
        assert!(relabel.process(&block("us-1", "01A")).is_none());
        assert!(relabel.process(&block("eu-2", "01A")).is_none());
        Ok(())
    }

    #[test]
    fn hashmod_shards_as_prometheus() -> Result<(), RelabelError> {
        // Exactly one of the three shards keeps the block.
        let shard = |n: u64| {
            Relabel::from_yaml(&format!(
                "- source_labels: [__block_id]\n  modulus: 3\n  target_label: __tmp_shard\n  action: hashmod\n\
                 - source_labels: [__tmp_shard]\n  regex: '{n}'\n  action: keep\n"
            ))
        };
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let expected = md5_tail(id) % 3;
        for n in 0..3 {
            let kept = shard(n)?.process(&block("eu", id)).is_some();
            assert_eq!(kept, n == expected, "shard {n}");
        }
        Ok(())
    }

    #[test]
    fn the_hash_is_md5s_last_eight_bytes() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(md5_tail(""), 0xe980_0998_ecf8_427e);
    }

    #[test]
    fn invalid_rules_are_errors() {
        assert!(Relabel::from_yaml("- action: hashmod\n  target_label: x\n").is_err());
        assert!(Relabel::from_yaml("- action: replace\n").is_err());
        assert!(Relabel::from_yaml("- regex: '('\n  target_label: x\n").is_err());
        assert!(Relabel::from_yaml("- bogus: 1\n").is_err());
        assert!(Relabel::from_yaml("").is_ok_and(|r| r.is_empty()));
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() -> Result<(), RelabelError> {
        let relabel = Relabel::from_yaml(
            "- regex: 'cluster'\n  replacement: 'origin'\n  action: labelmap\n\
             - regex: '__.*'\n  action: labeldrop\n",
        )?;
        let out = relabel.process(&block("eu", "01A"));
        assert_eq!(
            out.map(|l| l.to_string()),
            Some(r#"{cluster="eu", origin="eu"}"#.to_string())
        );
        Ok(())
    }
}
