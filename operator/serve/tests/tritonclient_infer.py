"""Asks `ciclo serve` for predictions with Triton's HTTP and gRPC clients, as its users would.

- `columns`: a built-in model of features x1, x2 (one tensor each), once with the client's
  defaults (inputs and outputs as binary tensor data), once in plain JSON;
- `matrix`: an exporter's ONNX model of one FP32 `input` [rows, features], with the defaults;
- `grpc-columns`, `grpc-matrix`: the same models through the gRPC client (inputs and outputs
  as raw bytes, its only way), with its health and metadata calls.

Prints what the client decoded, as JSON, for the Rust test to compare.

Usage: tritonclient_infer.py HOST:PORT MODEL columns|matrix|grpc-columns|grpc-matrix ROWS_JSON
(HOST:PORT is the gRPC port for the grpc- modes.)
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient


def text(values):
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def matrix(client, model, rows):
    x = httpclient.InferInput("input", list(rows.shape), "FP32")
    x.set_data_from_numpy(rows.astype(np.float32))
    result = client.infer(model, [x])
    names = [o["name"] for o in result.get_response()["outputs"]]
    return {name: result.as_numpy(name).tolist() for name in names}


def grpc(url, model, mode, rows):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    metadata = client.get_model_metadata(model)
    found = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready() and client.is_model_ready(model),
        "server": client.get_server_metadata().name,
        "inputs": [i.name for i in metadata.inputs],
        "outputs": [o.name for o in metadata.outputs],
    }
    if mode == "grpc-matrix":
        x = grpcclient.InferInput("input", list(rows.shape), "FP32")
        x.set_data_from_numpy(rows.astype(np.float32))
        inputs = [x]
    else:
        x1 = grpcclient.InferInput("x1", [len(rows)], "FP64")
        x1.set_data_from_numpy(rows[:, 0].astype(np.float64))
        x2 = grpcclient.InferInput("x2", [len(rows), 1], "FP32")
        x2.set_data_from_numpy(rows[:, 1:2].astype(np.float32))
        inputs = [x1, x2]
    result = client.infer(model, inputs, request_id="grpc-1")
    response = result.get_response()
    found["id"] = response.id
    found["answers"] = {
        o.name: text(result.as_numpy(o.name).tolist()) if o.datatype == "BYTES"
        else result.as_numpy(o.name).tolist()
        for o in response.outputs
    }
    return found


def main():
    url, model, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = np.array(json.loads(sys.argv[4]))
    if mode.startswith("grpc-"):
        print(json.dumps(grpc(url, model, mode, rows)))
        return
    client = httpclient.InferenceServerClient(url=url)
    if mode == "matrix":
        print(json.dumps(matrix(client, model, rows)))
        return
    found = {
        "extensions": client.get_server_metadata()["extensions"],
        "inputs": [i["name"] for i in client.get_model_metadata(model)["inputs"]],
    }
    # The defaults: binary inputs (one FP64, one FP32 column) and binary outputs.
    x1 = httpclient.InferInput("x1", [len(rows)], "FP64")
    x1.set_data_from_numpy(rows[:, 0].astype(np.float64))
    x2 = httpclient.InferInput("x2", [len(rows), 1], "FP32")
    x2.set_data_from_numpy(rows[:, 1:2].astype(np.float32))
    result = client.infer(model, [x1, x2])
    found["binary"] = {
        "predict": text(result.as_numpy("predict").tolist()),
        "predict_proba": result.as_numpy("predict_proba").tolist(),
    }
    # Plain JSON both ways.
    x1.set_data_from_numpy(rows[:, 0].astype(np.float64), binary_data=False)
    x2.set_data_from_numpy(rows[:, 1:2].astype(np.float32), binary_data=False)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=False)
        for name in ("predict", "predict_proba")
    ]
    result = client.infer(model, [x1, x2], outputs=outputs)
    found["json"] = {
        "predict": text(result.as_numpy("predict").tolist()),
        "predict_proba": result.as_numpy("predict_proba").tolist(),
    }
    print(json.dumps(found))


if __name__ == "__main__":
    main()
