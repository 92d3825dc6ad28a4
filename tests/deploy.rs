//! `deploy/kubernetes` and `deploy/systemd` held against the binary they deploy:
//! - every manifest parses, and the objects refer to each other correctly (selectors, ports,
//!   volumes, the bucket Secret, the kustomization's resources and image);
//! - every rthanos container starts, with its manifest's arguments (addresses moved to
//!   loopback, paths to a scratch directory), and so does every systemd unit's command line;
//! - every metric the alerts use is exported by the component whose job the alert selects;
//! - `systemd-analyze verify` accepts the units.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::Process;
use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use rthanos_testkit::{Prometheus, free_port};
use serde::Deserialize as _;
use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document under deploy/kubernetes, with the file it came from.
fn documents() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("deploy/kubernetes")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let name = file
            .strip_prefix(repo().join("deploy/kubernetes"))
            .expect("rel")
            .to_string_lossy()
            .to_string();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                out.push((name.clone(), value));
            }
        }
    }
    out
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for key in path {
        v = v.get(*key)?;
    }
    v.as_str()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut v = v;
    for key in path {
        match v.get(*key) {
            Some(next) => v = next,
            None => return &Value::Null,
        }
    }
    v
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn kind(doc: &Value) -> &str {
    str_of(doc, &["kind"]).unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    str_of(doc, &["metadata", "name"]).unwrap_or_default()
}

/// The Deployments and StatefulSets.
fn workloads(docs: &[(String, Value)]) -> Vec<&Value> {
    docs.iter()
        .map(|(_, d)| d)
        .filter(|d| matches!(kind(d), "Deployment" | "StatefulSet"))
        .collect()
}

fn containers(workload: &Value) -> Vec<&Value> {
    at(workload, &["spec", "template", "spec", "containers"])
        .as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn args(container: &Value) -> Vec<String> {
    at(container, &["args"])
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The image the kustomization retargets, which every rthanos container uses.
fn image_name(docs: &[(String, Value)]) -> String {
    let kustomization = docs
        .iter()
        .find(|(f, _)| f == "kustomization.yaml")
        .map(|(_, d)| d)
        .expect("kustomization.yaml");
    str_of(&at(kustomization, &["images"])[0], &["name"])
        .expect("images[0].name")
        .to_string()
}

#[test]
fn the_manifests_parse_and_refer_to_each_other() {
    let docs = documents();
    let image = image_name(&docs);

    // The kustomization's resources exist and hold Kubernetes objects.
    let kustomization = &docs
        .iter()
        .find(|(f, _)| f == "kustomization.yaml")
        .expect("kustomization")
        .1;
    let resources: Vec<&str> = at(kustomization, &["resources"])
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for resource in &resources {
        assert!(
            docs.iter()
                .any(|(f, d)| f == resource && !kind(d).is_empty()),
            "kustomization resource {resource} holds no object"
        );
    }

    // Every object names itself; every rthanos container runs the kustomization's image.
    let secrets: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| kind(d) == "Secret")
        .collect();
    for (file, doc) in &docs {
        if file == "prometheus-values.yaml" || file == "kustomization.yaml" {
            continue;
        }
        assert!(str_of(doc, &["apiVersion"]).is_some(), "{file}: apiVersion");
        assert!(!kind(doc).is_empty(), "{file}: kind");
        assert!(!name(doc).is_empty(), "{file}: metadata.name");
    }
    let workloads = workloads(&docs);
    assert_eq!(workloads.len(), 4, "query, store, compact and rule");
    let mut components = BTreeSet::new();
    for workload in &workloads {
        let wname = name(workload);
        let template_labels = labels(at(workload, &["spec", "template", "metadata", "labels"]));
        assert!(
            selects(
                &labels(at(workload, &["spec", "selector", "matchLabels"])),
                &template_labels
            ),
            "{wname}: selector does not select its pods"
        );
        let mut volumes: BTreeSet<&str> = at(workload, &["spec", "template", "spec", "volumes"])
            .as_sequence()
            .map(|s| s.iter().filter_map(|v| str_of(v, &["name"])).collect())
            .unwrap_or_default();
        volumes.extend(
            at(workload, &["spec", "volumeClaimTemplates"])
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(|v| str_of(v, &["metadata", "name"]))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
        // Secret volumes name a Secret of objstore/ that holds objstore.yml.
        for volume in at(workload, &["spec", "template", "spec", "volumes"])
            .as_sequence()
            .into_iter()
            .flatten()
        {
            if let Some(secret) = str_of(volume, &["secret", "secretName"]) {
                assert!(
                    secrets.iter().any(|s| name(s) == secret
                        && at(s, &["stringData", "objstore.yml"]).as_str().is_some()),
                    "{wname}: no Secret {secret} with objstore.yml"
                );
            }
        }
        for container in containers(workload) {
            assert_eq!(
                str_of(container, &["image"]).map(|i| i.split(':').next()),
                Some(Some(image.as_str())),
                "{wname}"
            );
            let args = args(container);
            components.insert(args.first().cloned().unwrap_or_default());
            for mount in at(container, &["volumeMounts"])
                .as_sequence()
                .into_iter()
                .flatten()
            {
                let mount = str_of(mount, &["name"]).unwrap_or_default();
                assert!(volumes.contains(mount), "{wname}: volume {mount} undefined");
            }
            let ports: BTreeSet<&str> = at(container, &["ports"])
                .as_sequence()
                .map(|s| s.iter().filter_map(|p| str_of(p, &["name"])).collect())
                .unwrap_or_default();
            for probe in ["livenessProbe", "readinessProbe"] {
                let port = at(container, &[probe, "httpGet", "port"]);
                if let Some(port) = port.as_str() {
                    assert!(ports.contains(port), "{wname}: {probe} port {port}");
                }
            }
        }
    }
    // ConfigMap volumes name a ConfigMap of the manifests.
    let config_maps: Vec<&str> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| kind(d) == "ConfigMap")
        .map(name)
        .collect();
    for workload in &workloads {
        for volume in at(workload, &["spec", "template", "spec", "volumes"])
            .as_sequence()
            .into_iter()
            .flatten()
        {
            if let Some(map) = str_of(volume, &["configMap", "name"]) {
                assert!(
                    config_maps.contains(&map),
                    "{}: no ConfigMap {map}",
                    name(workload)
                );
            }
        }
    }
    assert_eq!(
        components,
        ["compact", "query", "rule", "store"]
            .into_iter()
            .map(String::from)
            .collect()
    );

    // Services select a workload and target its named ports; ServiceMonitors select a Service
    // and scrape one of its ports.
    let services: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| kind(d) == "Service")
        .collect();
    for service in &services {
        let selector = labels(at(service, &["spec", "selector"]));
        let workload = workloads
            .iter()
            .find(|w| {
                selects(
                    &selector,
                    &labels(at(w, &["spec", "template", "metadata", "labels"])),
                )
            })
            .unwrap_or_else(|| panic!("Service {} selects no workload", name(service)));
        let container_ports: BTreeSet<&str> = containers(workload)
            .iter()
            .flat_map(|c| at(c, &["ports"]).as_sequence().into_iter().flatten())
            .filter_map(|p| str_of(p, &["name"]))
            .collect();
        for port in at(service, &["spec", "ports"])
            .as_sequence()
            .into_iter()
            .flatten()
        {
            if let Some(target) = str_of(port, &["targetPort"]) {
                assert!(
                    container_ports.contains(target),
                    "Service {}: targetPort {target}",
                    name(service)
                );
            }
        }
    }
    let monitors: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| kind(d) == "ServiceMonitor")
        .collect();
    assert_eq!(monitors.len(), 4);
    for monitor in monitors {
        let selector = labels(at(monitor, &["spec", "selector", "matchLabels"]));
        let service = services
            .iter()
            .find(|s| selects(&selector, &labels(at(s, &["metadata", "labels"]))))
            .unwrap_or_else(|| panic!("ServiceMonitor {} selects no Service", name(monitor)));
        let service_ports: BTreeSet<&str> = at(service, &["spec", "ports"])
            .as_sequence()
            .map(|s| s.iter().filter_map(|p| str_of(p, &["name"])).collect())
            .unwrap_or_default();
        for endpoint in at(monitor, &["spec", "endpoints"])
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let port = str_of(endpoint, &["port"]).unwrap_or_default();
            assert!(
                service_ports.contains(port),
                "{}: port {port}",
                name(monitor)
            );
        }
    }

    // kube-prometheus-stack runs the rthanos image as its sidecar, with the bucket Secret.
    let values = &docs
        .iter()
        .find(|(f, _)| f == "prometheus-values.yaml")
        .expect("values")
        .1;
    let thanos = at(values, &["prometheus", "prometheusSpec", "thanos"]);
    assert_eq!(
        str_of(thanos, &["image"]).and_then(|i| i.split(':').next()),
        Some(image.as_str())
    );
    // and, as the alternative to rule.yaml, its ThanosRuler.
    let ruler = at(values, &["thanosRuler", "thanosRulerSpec"]);
    assert_eq!(
        str_of(ruler, &["image"]).and_then(|i| i.split(':').next()),
        Some(image.as_str())
    );
    let ruler_secret = str_of(ruler, &["objectStorageConfig", "name"]).expect("ruler secret");
    assert!(secrets.iter().any(|s| name(s) == ruler_secret));
    let secret = str_of(thanos, &["objectStorageConfig", "name"]).expect("secret name");
    let key = str_of(thanos, &["objectStorageConfig", "key"]).expect("secret key");
    assert!(
        secrets
            .iter()
            .any(|s| name(s) == secret && at(s, &["stringData", key]).as_str().is_some()),
        "no Secret {secret} with {key}"
    );
}

/// A component started for real with a deployment's arguments: listen addresses moved to
/// loopback ports, directories and the bucket config to a scratch directory.
struct Started {
    process: Process,
    _scratch: tempfile::TempDir,
}

fn start_component(args: &[String], rules: &BTreeMap<String, String>) -> Started {
    let scratch = tempfile::tempdir().expect("tmp");
    let rules_dir = scratch.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    for (file, text) in rules {
        std::fs::write(rules_dir.join(file), text).expect("rule file");
    }
    let objstore = scratch.path().join("objstore.yml");
    std::fs::create_dir_all(scratch.path().join("bucket")).expect("bucket");
    let objstore_yaml = common::filesystem_yaml(&scratch.path().join("bucket"));
    std::fs::write(&objstore, &objstore_yaml).expect("objstore.yml");
    let (http_port, grpc_port) = (free_port(), free_port());
    let given: Vec<String> = args
        .iter()
        .map(|arg| {
            let (flag, _) = arg.split_once('=').unwrap_or((arg, ""));
            match flag {
                "--http-address" => format!("--http-address=127.0.0.1:{http_port}"),
                "--grpc-address" => format!("--grpc-address=127.0.0.1:{grpc_port}"),
                "--data-dir" => format!("--data-dir={}", scratch.path().join("data").display()),
                "--objstore.config-file" => {
                    format!("--objstore.config-file={}", objstore.display())
                }
                // prometheus-operator's `--objstore.config=$(OBJSTORE_CONFIG)`, which
                // Kubernetes expands from the Secret.
                "--objstore.config" => format!("--objstore.config={objstore_yaml}"),
                // The ConfigMap's files, mounted where the glob points.
                "--rule-file" => format!("--rule-file={}/*.yaml", rules_dir.display()),
                // Evaluated within a second, so the rule metrics exist at once.
                "--eval-interval" => "--eval-interval=1s".to_string(),
                _ => arg.clone(),
            }
        })
        .collect();
    let mut process = Process::start_as_given(&given, http_port, grpc_port);
    process.wait_for(Duration::from_secs(60), "ready", |p| {
        p.http_status("/-/ready") == Some(200)
    });
    Started {
        process,
        _scratch: scratch,
    }
}

/// The metric names and `job` matchers of every selector of an expression.
#[derive(Default)]
struct Selectors(Vec<(String, Option<String>)>);

impl ExprVisitor for Selectors {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let selector = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let name = selector.name.clone().or_else(|| {
            selector
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone())
        });
        let job = selector
            .matchers
            .matchers
            .iter()
            .find(|m| m.name == "job")
            .map(|m| m.value.clone());
        self.0.push((name.unwrap_or_default(), job));
        Ok(true)
    }
}

/// Whether a metric family (or one of a histogram's series) is in an exposition.
fn exports(metrics: &str, name: &str) -> bool {
    metrics.lines().any(|line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
    })
}

#[test]
fn every_container_starts_with_its_arguments_and_exports_what_its_alerts_use() {
    let docs = documents();
    // Prometheus's job for each component: the Service name for the ServiceMonitors here
    // (prometheus-operator's default), the relabelled job for kube-prometheus-stack's sidecar
    // ServiceMonitor.
    let mut jobs: BTreeMap<String, String> = BTreeMap::new();
    let workloads = workloads(&docs);
    for (_, service) in docs.iter().filter(|(_, d)| kind(d) == "Service") {
        let selector = labels(at(service, &["spec", "selector"]));
        if let Some(w) = workloads.iter().find(|w| {
            selects(
                &selector,
                &labels(at(w, &["spec", "template", "metadata", "labels"])),
            )
        }) {
            let component = args(containers(w)[0]).first().cloned().expect("component");
            jobs.insert(name(service).to_string(), component);
        }
    }
    let values = &docs
        .iter()
        .find(|(f, _)| f == "prometheus-values.yaml")
        .expect("values")
        .1;
    let sidecar_job = at(
        values,
        &["prometheus", "thanosServiceMonitor", "relabelings"],
    )
    .as_sequence()
    .into_iter()
    .flatten()
    .find(|r| str_of(r, &["targetLabel"]) == Some("job"))
    .and_then(|r| str_of(r, &["replacement"]))
    .expect("the sidecar's job");
    jobs.insert(sidecar_job.to_string(), "sidecar".to_string());

    // The ruler's rule files: the ConfigMap's.
    let rules: BTreeMap<String, String> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| kind(d) == "ConfigMap" && name(d) == "thanos-rule-rules")
        .flat_map(|d| {
            at(d, &["data"])
                .as_mapping()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!rules.is_empty(), "the ruler's ConfigMap");
    // Every rthanos container, started with its own arguments.
    let mut exposition: BTreeMap<String, String> = BTreeMap::new();
    for workload in &workloads {
        for container in containers(workload) {
            let args = args(container);
            let mut started = start_component(&args, &rules);
            if args[0] == "rule" {
                // A group's duration and time are there from its first evaluation on.
                started
                    .process
                    .wait_for(Duration::from_secs(30), "a rule evaluation", |p| {
                        common::http_get(p.http_port, "/metrics").is_some_and(|(_, m)| {
                            exports(&m, "prometheus_rule_group_last_duration_seconds")
                        })
                    });
            }
            let (_, metrics) =
                common::http_get(started.process.http_port, "/metrics").expect("metrics");
            exposition.insert(args[0].clone(), metrics);
        }
    }
    // The sidecar with prometheus-operator's argument list, next to a Prometheus with
    // external labels.
    let tsdb = tempfile::tempdir().expect("tmp");
    let prometheus = // testkit's Prometheus cuts 2h blocks, as the sidecar requires for uploads.
    Prometheus::start(
        tsdb.path(),
        "global:\n  external_labels:\n    cluster: production\n    replica: a\n",
    );
    let sidecar = start_component(
        &[
            "sidecar".to_string(),
            format!("--prometheus.url={}", prometheus.url()),
            "--grpc-address=:10901".to_string(),
            "--http-address=:10902".to_string(),
            format!("--tsdb.path={}", tsdb.path().display()),
            "--objstore.config=$(OBJSTORE_CONFIG)".to_string(),
            "--log.level=info".to_string(),
            "--log.format=logfmt".to_string(),
            r#"--prometheus.http-client={"tls_config": {"insecure_skip_verify":true}}"#.to_string(),
        ],
        &BTreeMap::new(),
    );
    let (_, metrics) = common::http_get(sidecar.process.http_port, "/metrics").expect("metrics");
    exposition.insert("sidecar".to_string(), metrics);

    // Every selector of every alert names a job of a component that exports its metric.
    let alerts = docs
        .iter()
        .find(|(f, d)| f == "alerts.yaml" && kind(d) == "PrometheusRule")
        .map(|(_, d)| d)
        .expect("alerts.yaml");
    let mut checked = 0;
    for group in at(alerts, &["spec", "groups"])
        .as_sequence()
        .expect("groups")
    {
        for rule in at(group, &["rules"]).as_sequence().expect("rules") {
            let alert = str_of(rule, &["alert"]).expect("alert name");
            let expr = str_of(rule, &["expr"]).expect("expr");
            let parsed = promql_parser::parser::parse(expr)
                .unwrap_or_else(|e| panic!("{alert}: {expr}: {e}"));
            let mut selectors = Selectors::default();
            walk_expr(&mut selectors, &parsed).expect("walk");
            assert!(!selectors.0.is_empty(), "{alert} selects nothing");
            for (metric, job) in selectors.0 {
                let job = job.unwrap_or_else(|| panic!("{alert}: {metric} without a job"));
                let component = jobs
                    .get(&job)
                    .unwrap_or_else(|| panic!("{alert}: job {job} is no component's"));
                // `up` is Prometheus's own record of each scrape.
                if metric != "up" {
                    assert!(
                        exports(&exposition[component], &metric),
                        "{alert}: {component} does not export {metric}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked} selectors");
}

/// A unit's command line after `rthanos`, with its `$RTHANOS_*_ARGS` taken from the
/// environment file beside it (as systemd reads it: backslash-continued lines joined, the
/// value split at whitespace).
fn unit_command(unit: &str, env: &str) -> Vec<String> {
    let joined = env.replace("\\\n", "");
    let mut variables = BTreeMap::new();
    for line in joined.lines() {
        if let Some((key, value)) = line.split_once('=')
            && key.starts_with("RTHANOS_")
        {
            // systemd's double quotes, with `\"` for a quote inside.
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            variables.insert(format!("${key}"), value.replace("\\\"", "\""));
        }
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = Vec::new();
    for word in exec.split_whitespace().skip(1) {
        match variables.get(word) {
            Some(value) => words.extend(value.split_whitespace().map(str::to_string)),
            None => words.push(word.to_string()),
        }
    }
    words
}

#[test]
fn the_systemd_units_verify_and_their_flags_start_each_component() {
    let units = repo().join("deploy/systemd");
    let scratch = tempfile::tempdir().expect("tmp");
    let mut copies = Vec::new();
    for component in ["sidecar", "query", "store", "compact", "rule"] {
        let unit = units.join(format!("rthanos-{component}.service"));
        let text = std::fs::read_to_string(&unit).expect("unit");
        assert!(
            text.contains(&format!("rthanos {component} ")),
            "{}: ExecStart does not run the {component}",
            unit.display()
        );
        // verify wants the program to exist: point it at this build.
        let copy = scratch.path().join(format!("rthanos-{component}.service"));
        std::fs::write(
            &copy,
            text.replace("/usr/local/bin/rthanos", env!("CARGO_BIN_EXE_rthanos")),
        )
        .expect("copy");
        copies.push(copy);
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&copies)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("rthanos-")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {ours:?}");

    // Each unit's command line, with its environment file's flags, starts its component (the
    // sidecar beside a Prometheus).
    let command = |component: &str| {
        let unit = std::fs::read_to_string(units.join(format!("rthanos-{component}.service")))
            .expect("unit");
        let env =
            std::fs::read_to_string(units.join(format!("rthanos-{component}.env"))).expect("env");
        unit_command(&unit, &env)
    };
    let rules = BTreeMap::from([(
        "example.yaml".to_string(),
        "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n".to_string(),
    )]);
    for component in ["query", "store", "compact", "rule"] {
        let args = command(component);
        assert_eq!(args[0], component);
        drop(start_component(&args, &rules));
    }
    let tsdb = tempfile::tempdir().expect("tmp");
    let prometheus = // testkit's Prometheus cuts 2h blocks, as the sidecar requires for uploads.
    Prometheus::start(
        tsdb.path(),
        "global:\n  external_labels:\n    replica: a\n",
    );
    let args: Vec<String> = command("sidecar")
        .into_iter()
        .map(|arg| {
            let (flag, _) = arg.split_once('=').unwrap_or((&arg, ""));
            match flag {
                "--prometheus.url" => format!("--prometheus.url={}", prometheus.url()),
                "--tsdb.path" => format!("--tsdb.path={}", tsdb.path().display()),
                _ => arg,
            }
        })
        .collect();
    assert_eq!(args[0], "sidecar");
    drop(start_component(&args, &BTreeMap::new()));
}
