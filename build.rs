//! Compiles the Core ML schema subset in `proto/` with protox (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/Model.proto",
        "proto/NeuralNetwork.proto",
        "proto/MIL.proto",
        "proto/CoreMLModels.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    let mut config = prost_build::Config::new();
    config.btree_map(["."]);
    config.compile_fds(descriptors)?;
    Ok(())
}
