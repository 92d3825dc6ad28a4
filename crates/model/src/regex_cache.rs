//! Compiled regexes, shared by pattern. Compiling is far dearer than matching with the `regex`
//! crate (it builds an NFA and often a full DFA: about a million instructions for
//! `node_.*`), and the same few patterns come back on every request: the querier compiles a
//! selector's matcher, then again when it checks stores' external labels, and every store
//! compiles it once more. Go's `regexp` compiles in microseconds, so Prometheus has no need
//! for this; here a request would otherwise spend most of its time compiling.

use std::sync::LazyLock;

use regex::Regex;

/// How many distinct patterns are kept. Dashboards use a bounded set of selectors; a flood
/// of distinct regexes only evicts older ones.
const CAPACITY: u64 = 1024;

static COMPILED: LazyLock<moka::sync::Cache<String, Regex>> =
    LazyLock::new(|| moka::sync::Cache::new(CAPACITY));

/// The compiled `pattern` (in Rust's syntax, anchored as the caller needs), from the cache
/// when it was compiled before. Errors are not cached: a bad pattern fails as fast to compile
/// again as it did the first time.
pub fn compiled(pattern: &str) -> Result<Regex, regex::Error> {
    if let Some(regex) = COMPILED.get(pattern) {
        return Ok(regex);
    }
    let regex = Regex::new(pattern)?;
    COMPILED.insert(pattern.to_string(), regex.clone());
    Ok(regex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_pattern_gives_an_equal_regex_and_errors_stay_errors() {
        let a = compiled("^(?:api|web)$").expect("valid");
        let b = compiled("^(?:api|web)$").expect("valid");
        assert_eq!(a.as_str(), b.as_str());
        assert!(b.is_match("web") && !b.is_match("webs"));
        assert!(compiled("(").is_err());
        assert!(compiled("(").is_err());
    }
}
