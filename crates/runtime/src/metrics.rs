//! The component's metric registry and its text exposition: `thanos_build_info` so dashboards see
//! the version, process metrics, and whatever the component and its bucket register.

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

/// Version facts of the running binary, recorded in `thanos_build_info`.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    /// Release version, e.g. `0.1.0`.
    pub version: &'static str,
    /// Git commit the binary was built from.
    pub revision: &'static str,
    /// Git branch the binary was built from.
    pub branch: &'static str,
    /// Compiler version; fills Thanos's `goversion` label so its label set stays the same.
    pub compiler: &'static str,
}

/// Creates the registry a component exposes on `/metrics`, holding `thanos_build_info` and the
/// process collector (CPU, memory, file descriptors).
pub fn new_registry(build: &BuildInfo) -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    let info = IntGaugeVec::new(
        Opts::new(
            "thanos_build_info",
            "A metric with a constant '1' value labeled by version, revision, branch, and goversion from which thanos was built.",
        ),
        &["version", "revision", "branch", "goversion"],
    )?;
    info.with_label_values(&[build.version, build.revision, build.branch, build.compiler])
        .set(1);
    registry.register(Box::new(info))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(registry)
}

/// Renders every metric of `registry` in the Prometheus text format (version 0.0.4).
pub fn render(registry: &Registry) -> Result<(String, String), prometheus::Error> {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    encoder.encode(&registry.gather(), &mut buf)?;
    Ok((
        encoder.format_type().to_string(),
        String::from_utf8_lossy(&buf).into_owned(),
    ))
}
