"""An MLServer inference runtime that serves one ONNX file through ONNX Runtime.

`load()` reads the model's bytes from its URI (`CICLO_MODEL_URI`: `s3://`, `gs://`, `az://`,
`file://` or a plain path) with obstore, with the artifact store's settings and keys from the
`CICLO_ARTIFACTS_*` variables; checks their BLAKE3 digest against `CICLO_MODEL_DIGEST`
(`blake3:<hex>`) and refuses to load on a mismatch; then builds an ONNX Runtime session from
the bytes in memory. Nothing is written to disk.

`predict()` feeds the request's tensors to the model's inputs of the same names and answers
with every output of the model (or those the request lists in `outputs`). A scikit-learn
probability map (skl2onnx's default ZipMap: one map class -> probability per row) comes back
as an FP32 tensor `[rows, classes]`, the classes in ascending order and listed in the
output's `parameters.classes`, as `ciclo serve` answers it.

A request that does not fit the protocol or names a tensor the model does not have is a 400
(MLServer's `InferenceError`). Anything ONNX Runtime refuses (a wrong dimension, say) is left
to propagate, so MLServer answers 500: a model that cannot answer a well-formed request shows
up as server errors in the canary analysis.
"""

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

# ONNX Runtime's Linux wheels (1.32) carry Microsoft's 1DS telemetry: it looks for a writable
# ~/.cache to keep a device ID and can send events to Microsoft. Off, before it is imported
# (the Containerfile sets this too).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import blake3  # noqa: E402
import numpy as np  # noqa: E402
import obstore  # noqa: E402
import onnxruntime as ort  # noqa: E402
from obstore.store import from_url  # noqa: E402

from mlserver import MLModel  # noqa: E402
from mlserver.errors import InferenceError  # noqa: E402
from mlserver.logging import logger  # noqa: E402
from mlserver.types import (  # noqa: E402
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    ResponseOutput,
)

ort.disable_telemetry_events()

# The workload contract's variables (docs/workload-contract.md, "Serving images").
URI_ENV = "CICLO_MODEL_URI"
DIGEST_ENV = "CICLO_MODEL_DIGEST"
STORE_ENV_PREFIX = "CICLO_ARTIFACTS_"

DIGEST_PREFIX = "blake3:"
_DIGEST_RE = re.compile(r"^blake3:[0-9a-f]{64}$")

# Each scheme's settings, as object_store names them in the environment (AWS_ENDPOINT, ...).
_PROVIDER_PREFIX = {
    "s3": "AWS_",
    "s3a": "AWS_",
    "gs": "GOOGLE_",
    "az": "AZURE_",
    "adl": "AZURE_",
    "azure": "AZURE_",
    "abfs": "AZURE_",
    "abfss": "AZURE_",
}

# object_store's HTTP client settings: obstore takes them apart from the store's own
# (`client_options`), and fails on them among the store's settings.
_CLIENT_KEYS = {
    "allow_http",
    "allow_invalid_certificates",
    "connect_timeout",
    "default_content_type",
    "http1_only",
    "http2_keep_alive_interval",
    "http2_keep_alive_timeout",
    "http2_keep_alive_while_idle",
    "http2_max_frame_size",
    "http2_only",
    "pool_idle_timeout",
    "pool_max_idle_per_host",
    "proxy_url",
    "proxy_ca_certificate",
    "proxy_excludes",
    "randomize_addresses",
    "timeout",
    "user_agent",
}

# Give up on an unreachable store within seconds, not object_store's default minutes: the pod
# restarts and tries again, and its logs say why meanwhile.
_RETRY = {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}

# ONNX element types and their V2 datatypes and NumPy types. Others (bfloat16, complex, ...)
# are refused at load.
_ONNX_TYPES: Dict[str, Tuple[str, Any]] = {
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(string)": ("BYTES", np.object_),
}
# A probability map per row (skl2onnx's ZipMap), answered as FP32 [rows, classes].
_ZIPMAP_TYPES = {
    "seq(map(int64,tensor(float)))",
    "seq(map(string,tensor(float)))",
}

_V2_TO_NUMPY = {v2: np_type for v2, np_type in _ONNX_TYPES.values() if v2 != "BYTES"}
_NUMPY_TO_V2 = {np.dtype(np_type): v2 for v2, np_type in _V2_TO_NUMPY.items()}


class ModelLoadError(Exception):
    """The model file cannot be served: unreachable, not the one meant, or not a model."""


def expected_digest(given: str) -> str:
    """`blake3:<64 hex digits>`, in lower case; anything else is an error."""
    digest = given.strip().lower()
    if not _DIGEST_RE.match(digest):
        raise ModelLoadError(
            f"{DIGEST_ENV} {given!r} is not {DIGEST_PREFIX}<64 hex digits>"
        )
    return digest


def digest_of(data) -> str:
    """`blake3:<hex>` of the bytes, as the trainer records it."""
    return DIGEST_PREFIX + blake3.blake3(data).hexdigest()


def store_options(
    scheme: str, env: Optional[Dict[str, str]] = None
) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The store's settings and its HTTP client's, from `CICLO_ARTIFACTS_<AWS_|GOOGLE_|AZURE_>…`.

    `CICLO_ARTIFACTS_AWS_ENDPOINT=http://…` becomes `{"aws_endpoint": "http://…"}`, and
    `CICLO_ARTIFACTS_AWS_ALLOW_HTTP=true` the client option `{"allow_http": "true"}`.
    """
    env = os.environ if env is None else env
    provider = _PROVIDER_PREFIX.get(scheme)
    config: Dict[str, str] = {}
    client: Dict[str, str] = {}
    if provider is None:
        return config, client
    prefix = STORE_ENV_PREFIX + provider
    for name, value in env.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :].lower()
        if key in _CLIENT_KEYS:
            client[key] = value
        else:
            config[provider.lower() + key] = value
    if provider == "AWS_":
        has_endpoint = "aws_endpoint" in config or "aws_endpoint_url" in config
        if has_endpoint and "aws_access_key_id" not in config:
            # A custom endpoint without keys is an anonymous store: never fall back to a
            # cloud's instance-metadata credentials, which no such store has.
            config.setdefault("aws_skip_signature", "true")
    return config, client


def split_uri(uri: str) -> Tuple[str, str, str]:
    """(scheme, the store's URL, the object's name in it) of a model file's URI or path."""
    if "://" not in uri:
        uri = Path(uri).resolve().as_uri()
    scheme = uri.split("://", 1)[0].lower()
    base, _, name = uri.rstrip("/").rpartition("/")
    if not name or base.endswith(":/"):
        raise ModelLoadError(f"{URI_ENV} {uri!r} does not name a file")
    return scheme, base, name


async def fetch(uri: str) -> bytes:
    """The bytes at `uri`, with the artifact store's settings from the environment."""
    scheme, base, name = split_uri(uri)
    config, client = store_options(scheme)
    # Which settings are used, never their values: the keys are among them.
    logger.info(
        "Reading the model from %s (store settings: %s)",
        uri,
        ", ".join(sorted(config) + sorted(client)) or "none",
    )
    if scheme == "http":
        # The URI itself says plain HTTP.
        client.setdefault("allow_http", "true")
    try:
        if scheme == "file":
            store = from_url(base)
        else:
            store = from_url(
                base,
                config=config or None,
                client_options=client or None,
                retry_config=_RETRY,
            )
        result = await obstore.get_async(store, name)
        data = await result.bytes_async()
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        # BaseException too: a setting obstore does not expect can surface as a Rust panic
        # (pyo3's PanicException). object_store's errors name the object, not the keys.
        raise ModelLoadError(
            f"cannot read {uri}: {type(e).__name__}: {first_line(str(e))} "
            f"(the store's settings and keys come from {STORE_ENV_PREFIX}* variables)"
        ) from None
    return data


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _dims(shape) -> List[int]:
    """A shape for the metadata: a dimension the file leaves free is -1."""
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def _check_types(session: ort.InferenceSession) -> None:
    for i in session.get_inputs():
        if i.type not in _ONNX_TYPES:
            raise ModelLoadError(f"input {i.name!r} is a {i.type}, which V2 cannot send")
    for o in session.get_outputs():
        if o.type not in _ONNX_TYPES and o.type not in _ZIPMAP_TYPES:
            raise ModelLoadError(
                f"output {o.name!r} is a {o.type}, which V2 cannot answer"
            )


def _new_session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # One thread per run, as `ciclo serve` runs a model; runs go to a thread pool, so
    # concurrent requests still use every core the pod has.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelLoadError(
            f"ONNX Runtime cannot load the model: {first_line(str(e))}"
        ) from None


def _flatten(data: Any) -> List[Any]:
    if isinstance(data, (list, tuple)):
        out: List[Any] = []
        for item in data:
            out.extend(_flatten(item))
        return out
    return [data]


def _convert(name: str, array: np.ndarray, target: np.dtype) -> np.ndarray:
    """`array` as the input's element type, when the conversion keeps every value."""
    if array.dtype == target:
        return array
    source = array.dtype.kind
    if target.kind == "f" and source in "biuf":
        return array.astype(target)
    if target.kind in "iu" and source in "biu":
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InferenceError(f"input {name!r}: a value is out of range for {target}")
        return array.astype(target)
    raise InferenceError(
        f"input {name!r}: the model takes {_NUMPY_TO_V2.get(target, 'BYTES')}, "
        f"not {_NUMPY_TO_V2.get(array.dtype, 'BYTES')}"
    )


def decode_input(request_input: RequestInput, onnx_type: str) -> np.ndarray:
    """A request tensor as the NumPy array the model's input takes (400 when it cannot be)."""
    name = request_input.name
    datatype = getattr(request_input.datatype, "value", request_input.datatype)
    data = getattr(request_input.data, "root", request_input.data)
    shape = list(request_input.shape)
    try:
        if onnx_type == "tensor(string)":
            if datatype != "BYTES":
                raise InferenceError(f"input {name!r}: the model takes BYTES, not {datatype}")
            values = [
                v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else str(v)
                for v in _flatten(data)
            ]
            return np.array(values, dtype=object).reshape(shape)
        if datatype not in _V2_TO_NUMPY:
            raise InferenceError(f"input {name!r}: {datatype} cannot feed {onnx_type}")
        array = np.asarray(data, dtype=_V2_TO_NUMPY[datatype]).reshape(shape)
    except InferenceError:
        raise
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise InferenceError(
            f"input {name!r}: its data does not make a {datatype} tensor of shape "
            f"{shape}: {first_line(str(e))}"
        ) from None
    return _convert(name, array, np.dtype(_ONNX_TYPES[onnx_type][1]))


def encode_output(name: str, value: Any) -> ResponseOutput:
    """An ONNX Runtime result as a V2 tensor."""
    if isinstance(value, list):
        return _encode_probability_maps(name, value)
    array = np.asarray(value)
    if array.dtype.kind in "OUS":
        data = [
            v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.ravel()
        ]
        return ResponseOutput(
            name=name, shape=list(array.shape), datatype="BYTES", data=data
        )
    return ResponseOutput(
        name=name,
        shape=list(array.shape),
        datatype=_NUMPY_TO_V2[array.dtype],
        data=array.ravel().tolist(),
    )


def _encode_probability_maps(name: str, rows: List[Dict[Any, float]]) -> ResponseOutput:
    classes = sorted(rows[0].keys()) if rows else []
    table = np.array(
        [[row[c] for c in classes] for row in rows], dtype=np.float32
    ).reshape(len(rows), len(classes))
    return ResponseOutput(
        name=name,
        shape=list(table.shape),
        datatype="FP32",
        data=table.ravel().tolist(),
        parameters=Parameters(classes=classes),
    )


class OnnxRuntime(MLModel):
    """One ONNX file, one ONNX Runtime session."""

    async def load(self) -> bool:
        try:
            return await self._load()
        except ModelLoadError as e:
            # One line that says why, before MLServer's traceback.
            logger.error("Cannot serve model %s: %s", self.name, e)
            raise

    async def _load(self) -> bool:
        parameters = self.settings.parameters
        extra = (parameters.extra if parameters else None) or {}
        uri = (parameters.uri if parameters else None) or os.environ.get(URI_ENV)
        if not uri:
            raise ModelLoadError(f"no model URI: set {URI_ENV}")
        given = extra.get("digest") or os.environ.get(DIGEST_ENV, "")
        expected = expected_digest(given) if given.strip() else None

        data = await fetch(uri)
        # Hashing and parsing a large model take a while: off the event loop, so the health
        # endpoints keep answering meanwhile.
        actual = await asyncio.to_thread(digest_of, data)
        if expected is None:
            logger.warning(
                "No %s: serving %s unverified (%s)", DIGEST_ENV, uri, actual
            )
        elif actual != expected:
            raise ModelLoadError(
                f"refusing {uri}: its digest is {actual}, but {DIGEST_ENV} is {expected}"
            )
        session = await asyncio.to_thread(_new_session, bytes(data))
        del data
        _check_types(session)

        self._session = session
        self._input_types = {i.name: i.type for i in session.get_inputs()}
        self._output_names = [o.name for o in session.get_outputs()]
        self.inputs = [
            MetadataTensor(
                name=i.name, datatype=_ONNX_TYPES[i.type][0], shape=_dims(i.shape)
            )
            for i in session.get_inputs()
        ]
        self.outputs = [
            MetadataTensor(
                name=o.name,
                datatype=_ONNX_TYPES[o.type][0] if o.type in _ONNX_TYPES else "FP32",
                shape=_dims(o.shape) if o.type in _ONNX_TYPES else [-1, -1],
            )
            for o in session.get_outputs()
        ]
        if not self.settings.platform:
            self.settings.platform = "onnxruntime_onnx"
        if self.version and not self.settings.versions:
            self.settings.versions = [self.version]
        logger.info(
            "Model %s (version %s) loaded from %s, %s; inputs %s, outputs %s",
            self.name,
            self.version,
            uri,
            actual,
            [f"{i.name}: {i.type}{_dims(i.shape)}" for i in session.get_inputs()],
            self._output_names,
        )
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds: Dict[str, np.ndarray] = {}
        for request_input in payload.inputs:
            onnx_type = self._input_types.get(request_input.name)
            if onnx_type is None:
                raise InferenceError(
                    f"model {self.name} has no input {request_input.name!r} "
                    f"(its inputs: {', '.join(self._input_types)})"
                )
            if request_input.name in feeds:
                raise InferenceError(f"input {request_input.name!r} is given twice")
            feeds[request_input.name] = decode_input(request_input, onnx_type)
        missing = [n for n in self._input_types if n not in feeds]
        if missing:
            raise InferenceError(f"model {self.name} needs the inputs {missing}")

        names = self._output_names
        if payload.outputs:
            names = [o.name for o in payload.outputs]
            unknown = [n for n in names if n not in self._output_names]
            if unknown:
                raise InferenceError(
                    f"model {self.name} has no output {unknown[0]!r} "
                    f"(its outputs: {', '.join(self._output_names)})"
                )

        # ONNX Runtime's errors propagate on purpose: MLServer answers them with a 500.
        results = await asyncio.to_thread(self._session.run, names, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[encode_output(n, r) for n, r in zip(names, results)],
        )

