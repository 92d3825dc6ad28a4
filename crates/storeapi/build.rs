//! Generates the StoreAPI and remote-read code from proto/ with protox (a Rust protobuf
//! compiler), so a fresh machine builds without a system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script reused from a clone elsewhere (same target dir) must
    // still look in this checkout.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "thanos/types.proto",
        "thanos/rpc.proto",
        "thanos/info.proto",
        "thanos/metadata.proto",
        "thanos/exemplars.proto",
        "thanos/rules.proto",
        "prometheus/remote.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Chunk bytes pass from remote read or the bucket to the wire without copies.
        .bytes(".")
        .codec_path("crate::codec::StoreCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
