//! Conversions between the wire messages and the data model: label sets and matchers, for both
//! the StoreAPI (`thanos.*`) and remote read (`prometheus.*`), whose matcher enums share numbers.

use rthanos_model::{Label, Labels, MatchType, Matcher, MatcherError};

use crate::{prometheus, thanos};

/// A matcher from the wire that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The matcher type number is not EQ, NEQ, RE or NRE.
    #[error("matcher {name}: unknown type {number}")]
    UnknownMatchType {
        /// The label name.
        name: String,
        /// The number received.
        number: i32,
    },
    /// The regex does not compile.
    #[error(transparent)]
    Regex(#[from] MatcherError),
}

fn match_type(name: &str, number: i32) -> Result<MatchType, ConvertError> {
    Ok(match number {
        0 => MatchType::Equal,
        1 => MatchType::NotEqual,
        2 => MatchType::Regex,
        3 => MatchType::NotRegex,
        _ => {
            return Err(ConvertError::UnknownMatchType {
                name: name.to_string(),
                number,
            });
        }
    })
}

/// Matchers of a StoreAPI request.
pub fn matchers_from_thanos(
    matchers: &[thanos::LabelMatcher],
) -> Result<Vec<Matcher>, ConvertError> {
    matchers
        .iter()
        .map(|m| {
            Ok(Matcher::new(
                match_type(&m.name, m.r#type)?,
                m.name.as_str(),
                m.value.as_str(),
            )?)
        })
        .collect()
}

/// A matcher as the StoreAPI sends it.
pub fn matcher_to_thanos(m: &Matcher) -> thanos::LabelMatcher {
    thanos::LabelMatcher {
        r#type: m.kind as i32,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// A matcher as remote read sends it.
pub fn matcher_to_prometheus(m: &Matcher) -> prometheus::LabelMatcher {
    prometheus::LabelMatcher {
        r#type: m.kind as i32,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// A label set from StoreAPI labels (sorted by name on the way in; a later duplicate wins).
pub fn labels_from_thanos(labels: Vec<thanos::Label>) -> Labels {
    Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))
}

/// A label set from remote-read labels.
pub fn labels_from_prometheus(labels: Vec<prometheus::Label>) -> Labels {
    Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))
}

/// StoreAPI labels, in the set's (name) order.
pub fn labels_to_thanos(labels: &Labels) -> Vec<thanos::Label> {
    labels
        .iter()
        .map(|Label { name, value }| thanos::Label {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_round_trip_and_bad_ones_are_errors() {
        let wire = vec![
            thanos::LabelMatcher {
                r#type: 0,
                name: "__name__".into(),
                value: "up".into(),
            },
            thanos::LabelMatcher {
                r#type: 3,
                name: "job".into(),
                value: "a|b".into(),
            },
        ];
        let model = matchers_from_thanos(&wire).expect("valid");
        assert_eq!(model[1].kind, MatchType::NotRegex);
        assert!(model[1].matches("c"));
        assert_eq!(
            model.iter().map(matcher_to_thanos).collect::<Vec<_>>(),
            wire
        );
        assert_eq!(
            matcher_to_prometheus(&model[1]).r#type,
            prometheus::label_matcher::Type::Nre as i32
        );
        let bad = [thanos::LabelMatcher {
            r#type: 7,
            name: "x".into(),
            value: "y".into(),
        }];
        assert!(matches!(
            matchers_from_thanos(&bad),
            Err(ConvertError::UnknownMatchType { number: 7, .. })
        ));
        let bad = [thanos::LabelMatcher {
            r#type: 2,
            name: "x".into(),
            value: "(".into(),
        }];
        assert!(matches!(
            matchers_from_thanos(&bad),
            Err(ConvertError::Regex(_))
        ));
    }

    #[test]
    fn labels_are_sorted_on_the_way_in() {
        let wire = vec![
            thanos::Label {
                name: "job".into(),
                value: "api".into(),
            },
            thanos::Label {
                name: "__name__".into(),
                value: "up".into(),
            },
        ];
        let labels = labels_from_thanos(wire);
        assert_eq!(labels.to_string(), r#"{__name__="up", job="api"}"#);
        assert_eq!(labels_to_thanos(&labels)[0].name, "__name__");
        let prom = labels_from_prometheus(vec![prometheus::Label {
            name: "a".into(),
            value: "1".into(),
        }]);
        assert_eq!(prom.get("a"), Some("1"));
    }
}
