//! Compiles the AliECS protos with protox (a protobuf compiler in Rust), so that no
//! system `protoc` is needed, and generates the prost types.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/kafka/kafka.proto", "proto/protos/events.proto"];
    for file in files.iter().chain(&["proto/protos/common.proto"]) {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
