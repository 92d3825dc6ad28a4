//! Records the revision, branch and compiler of the build for `--version` and
//! `thanos_build_info`. Values can be given by the environment (e.g. a Docker build without
//! `.git`): RTHANOS_REVISION, RTHANOS_BRANCH.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let revision = std::env::var("RTHANOS_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let branch = std::env::var("RTHANOS_BRANCH")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--abbrev-ref", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiler = output(&rustc, &["--version"]).unwrap_or_else(|| "rustc".into());
    println!("cargo:rustc-env=RTHANOS_REVISION={revision}");
    println!("cargo:rustc-env=RTHANOS_BRANCH={branch}");
    println!("cargo:rustc-env=RTHANOS_COMPILER={compiler}");
    println!("cargo:rerun-if-env-changed=RTHANOS_REVISION");
    println!("cargo:rerun-if-env-changed=RTHANOS_BRANCH");
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
