//! `ciclo serve` over real HTTP on 127.0.0.1: real trained models and an ONNX model, each
//! endpoint, bad input, metrics, and the server's life (loading, a wrong digest, SIGTERM).

mod bad_input;
mod capture;
mod common;
mod exporters;
mod grpc;
mod lifecycle;
mod metrics;
mod onnx;
mod overload;
mod skew;
mod tritonclient;
mod v1;
mod v2;
