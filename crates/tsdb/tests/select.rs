//! Postings selection on a promtool-made block against brute force: for each set of matchers,
//! the selected series are exactly those whose labels the matchers accept.

use rthanos_model::{MatchType, Matcher};
use rthanos_testkit::PromtoolBlocks;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_tsdb::Block;

#[test]
fn select_equals_brute_force() {
    let spec = Spec {
        series: 300,
        samples: 20,
        interval: 30,
        ..Spec::default()
    };
    let made = PromtoolBlocks::create(&generate(&spec), "2h");
    let block = Block::open(&made.blocks[0]).expect("open");
    let index = block.index();
    let all: Vec<_> = index
        .all_postings()
        .expect("all")
        .into_iter()
        .map(|id| (id, index.series(id).expect("series").labels))
        .collect();
    let m = |kind, name: &str, value: &str| Matcher::new(kind, name, value).expect("matcher");
    use MatchType::*;
    let cases: Vec<Vec<Matcher>> = vec![
        vec![m(Equal, "__name__", "http_requests_total")],
        vec![
            m(Equal, "__name__", "http_requests_total"),
            m(Equal, "code", "500"),
        ],
        vec![m(Regex, "code", "200|404")],
        vec![m(Regex, "instance", "host-1.*")],
        vec![m(NotEqual, "code", "200")],
        vec![
            m(NotRegex, "__name__", "request_.*"),
            m(Regex, "site", "a|b"),
        ],
        vec![m(Equal, "site", "")],
        vec![m(NotEqual, "site", "")],
        vec![m(Regex, "site", ".*")],
        vec![m(Regex, "site", ".+")],
        vec![m(Regex, "le", "|0.5")],
        vec![
            m(Equal, "job", "api"),
            m(NotRegex, "instance", "host-[0-4].*"),
            m(Regex, "code", "5.."),
        ],
        vec![m(Equal, "nosuchlabel", "x")],
        vec![m(NotEqual, "nosuchlabel", "x")],
        vec![m(Regex, "__name__", ".*_bucket"), m(Equal, "le", "+Inf")],
    ];
    for matchers in cases {
        let got = index.select(&matchers).expect("select");
        let want: Vec<u64> = all
            .iter()
            .filter(|(_, labels)| {
                matchers
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
            })
            .map(|(id, _)| *id)
            .collect();
        let shown: Vec<String> = matchers.iter().map(ToString::to_string).collect();
        assert_eq!(got, want, "{shown:?}");
    }
    // Label values restricted by matchers.
    let codes = index
        .label_values_matching("code", &[m(Equal, "instance", "host-0")])
        .expect("values");
    assert_eq!(codes, ["200", "404", "500"]);
    let none = index
        .label_values_matching("code", &[m(Equal, "__name__", "temperature_celsius")])
        .expect("values");
    assert!(none.is_empty());
    // Label names restricted by matchers.
    let names = index
        .label_names_matching(&[m(Equal, "__name__", "temperature_celsius")])
        .expect("names");
    assert_eq!(names, ["__name__", "room", "site"]);
    assert_eq!(
        index.label_names_matching(&[]).expect("all").len(),
        index.label_names().count()
    );
}
