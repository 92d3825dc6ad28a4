//! The querier's web UI in a real browser: headless Chromium (Debian's `chromium`, driven
//! through `chromedriver`) loads `/graph` from `rthanos query` over a sidecar and a real
//! Prometheus, types a PromQL expression, runs it as a table and as a graph, and the test
//! reads the rendered table rows and SVG lines; then the stores page. Screenshots are kept in
//! `$CARGO_TARGET_TMPDIR/artefacts/` (printed by the test).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{PromtoolBlocks, free_port, wait_for_port};

/// chromedriver on a free loopback port, killed when dropped.
struct ChromeDriver(Child, u16);

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver could not be started ({e}); scripts/test.sh installs it (apt-get install chromium chromium-driver)")
            });
        wait_for_port(port, "chromedriver", Duration::from_secs(30));
        ChromeDriver(child, port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artefact(name: &str, png: &[u8]) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artefacts");
    std::fs::create_dir_all(&dir).expect("artefacts dir");
    let path = dir.join(name);
    std::fs::write(&path, png).expect("screenshot");
    println!("screenshot: {}", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_runs_queries_in_a_real_browser() -> Result<(), Box<dyn std::error::Error>> {
    let blocks = PromtoolBlocks::create(
        &generate(&Spec {
            series: 4,
            samples: 240,
            interval: 30,
            ..Spec::default()
        }),
        "2h",
    );
    let replica = common::Replica::start(
        &blocks.data_dir(),
        "global:\n  external_labels:\n    cluster: ui\n    replica: a\n",
    );
    // A ruler over a querier of the sidecar, and the querier the UI is opened on, over the
    // sidecar and the ruler.
    let rules_dir = tempfile::tempdir().expect("tmp");
    let rules = rules_dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: ui\n  interval: 1s\n  rules:\n  - record: job:up:count\n    expr: count(up)\n  - alert: AlwaysFiring\n    expr: vector(1)\n    labels:\n      severity: none\n    annotations:\n      summary: rendered for {{ $labels.severity }}\n  - alert: NeverFiring\n    expr: vector(1) == 2\n",
    )
    .expect("rules");
    let inner = common::start_query([&replica.sidecar], &[]);
    let mut ruler = common::Process::start(&[
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--data-dir={}", rules_dir.path().join("data").display()),
        format!("--query=127.0.0.1:{}", inner.http_port),
    ]);
    ruler.wait_ready(Duration::from_secs(30));
    let query = common::start_query([&replica.sidecar, &ruler], &[]);
    let base = format!("http://127.0.0.1:{}", query.http_port);
    let ruler_base = format!("http://127.0.0.1:{}", ruler.http_port);

    let driver = ChromeDriver::start();
    // Several TLS providers are linked in; the WebDriver connection is plain HTTP anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        }),
    );
    let browser = ClientBuilder::rustls()?
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await?;
    let mut result = run(&browser, &base).await;
    if result.is_ok() {
        result = rules_pages(&browser, &base, "query").await;
    }
    if result.is_ok() {
        result = rules_pages(&browser, &ruler_base, "rule").await;
    }
    browser.close().await?;
    result
}

async fn run(browser: &fantoccini::Client, base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let wait = Duration::from_secs(20);
    // `/` leads to the graph page.
    browser.goto(&format!("{base}/")).await?;
    let expr = browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Id("expr"))
        .await?;
    assert!(browser.current_url().await?.path().ends_with("/graph"));

    // Table: an instant query at a time inside the data (2023-11-14T23:30:00Z).
    browser
        .find(Locator::Id("end"))
        .await?
        .send_keys("2023-11-14T23:30:00Z")
        .await?;
    expr.send_keys("sum by (code) (rate(http_requests_total[5m]))")
        .await?;
    browser.find(Locator::Id("execute")).await?.click().await?;
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#result-table tbody tr"))
        .await?;
    let rows = browser
        .find_all(Locator::Css("#result-table tbody tr"))
        .await?;
    assert!(!rows.is_empty());
    let first = rows[0].text().await?;
    assert!(first.contains("code="), "{first}");
    let png = browser.screenshot().await?;
    artefact("query-ui-table.png", &png);

    // Graph: the same expression as a range query over the 2h of data.
    browser.find(Locator::Id("range")).await?.clear().await?;
    browser
        .find(Locator::Id("range"))
        .await?
        .send_keys("2h")
        .await?;
    browser
        .find(Locator::Id("tab-graph"))
        .await?
        .click()
        .await?;
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#chart path.series-line"))
        .await?;
    let lines = browser
        .find_all(Locator::Css("#chart path.series-line"))
        .await?;
    let legend = browser.find(Locator::Id("legend")).await?.text().await?;
    assert_eq!(
        lines.len(),
        legend.lines().count(),
        "one line per series: {legend}"
    );
    assert!(legend.contains("code="), "{legend}");
    for line in &lines {
        let d = line.attr("d").await?.unwrap_or_default();
        // A line with many points: a range query, not one dot.
        assert!(d.matches('L').count() > 20, "{d}");
    }
    // The drawn lines stay inside the plot area.
    let inside: bool = browser
        .execute(
            "const s = document.getElementById('chart').getBoundingClientRect();
             return [...document.querySelectorAll('#chart path.series-line')].every(p => {
               const b = p.getBoundingClientRect();
               return b.width > s.width / 3 && b.left >= s.left && b.right <= s.right + 1
                 && b.top >= s.top && b.bottom <= s.bottom + 1; });",
            vec![],
        )
        .await?
        .as_bool()
        .unwrap_or(false);
    assert!(inside, "the graph's lines are drawn inside the chart");
    let url = browser.current_url().await?;
    assert!(url.query().is_some_and(|q| q.contains("g0.tab=0")), "{url}");
    let png = browser.screenshot().await?;
    let shot = artefact("query-ui-graph.png", &png);
    assert!(std::fs::metadata(shot)?.len() > 10_000);

    // A malformed expression shows Prometheus's error, not a blank page.
    expr.clear().await?;
    expr.send_keys("sum(rate(").await?;
    browser.find(Locator::Id("execute")).await?.click().await?;
    let error = browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#messages .error"))
        .await?
        .text()
        .await?;
    assert!(error.starts_with("bad_data"), "{error}");

    // Stores: the sidecar, up, with its label set.
    browser.goto(&format!("{base}/stores")).await?;
    let status = browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("table.stores td.up"))
        .await?
        .text()
        .await?;
    assert_eq!(status, "UP");
    let page = browser.find(Locator::Id("stores")).await?.text().await?;
    assert!(
        page.to_lowercase().contains("sidecar") && page.contains("cluster=\"ui\""),
        "{page}"
    );
    let png = browser.screenshot().await?;
    artefact("query-ui-stores.png", &png);
    Ok(())
}

/// The Alerts and Rules pages, on the querier (over its rulers) and on the ruler itself.
async fn rules_pages(
    browser: &fantoccini::Client,
    base: &str,
    component: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let wait = Duration::from_secs(30);
    // The ruler's `/` leads to its alerts; it shows neither graph nor stores.
    if component == "rule" {
        browser.goto(&format!("{base}/")).await?;
        browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Id("alerts"))
            .await?;
        assert!(browser.current_url().await?.path().ends_with("/alerts"));
        assert!(
            !browser
                .find(Locator::Id("nav-graph"))
                .await?
                .is_displayed()
                .await?
        );
        assert_eq!(
            browser.find(Locator::Id("brand")).await?.text().await?,
            "rthanos rule"
        );
    }
    // Alerts: the firing rule with its alert, opened; the other inactive.
    let deadline = std::time::Instant::now() + wait;
    let page = loop {
        browser.goto(&format!("{base}/alerts")).await?;
        let row = browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#alerts p"))
            .await?;
        let _ = row;
        let text = browser.find(Locator::Id("alerts")).await?.text().await?;
        if text.contains("FIRING") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        page.contains("firing (1)") && page.contains("inactive (1)"),
        "{page}"
    );
    assert!(
        page.contains("AlwaysFiring") && page.contains("NeverFiring"),
        "{page}"
    );
    assert!(
        page.contains("FIRING") && page.contains("alertname=\"AlwaysFiring\""),
        "{page}"
    );
    assert!(
        page.contains("summary: rendered for {{ $labels.severity }}"),
        "{page}"
    );
    let png = browser.screenshot().await?;
    artefact(&format!("{component}-ui-alerts.png"), &png);
    // Rules: the group, each rule healthy.
    browser.goto(&format!("{base}/rules")).await?;
    let health = browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("table.rules td.up"))
        .await?
        .text()
        .await?;
    assert_eq!(health, "OK");
    let page = browser.find(Locator::Id("rules")).await?.text().await?;
    assert!(
        page.contains("record: job:up:count") && page.contains("expr: count(up)"),
        "{page}"
    );
    let png = browser.screenshot().await?;
    artefact(&format!("{component}-ui-rules.png"), &png);
    Ok(())
}
