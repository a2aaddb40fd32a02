//! Compiles the Open Inference Protocol's gRPC service (`proto/grpc_predict_v2.proto`) into
//! tonic's server and client and prost's messages, with protox (protoc in Rust) so that the
//! build needs no protoc on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpc_predict_v2.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        // The client is for the tests, which call the server as a gRPC client would.
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
