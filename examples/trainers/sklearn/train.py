"""Train a scikit-learn classifier on one dataset version and export it as ONNX.

A training image for ciclo's TrainingRun `spec.image`, following the workload contract
(docs/workload-contract.md):

1. Read the dataset version's manifest (CICLO_DATASET_MANIFEST, in the artifact store) and
   fetch exactly the files it lists from the dataset's source (CICLO_DATASET_URI), checking
   each file's size and BLAKE3 hash, so the model is trained on that version and no other.
2. Parse the CSV files into a float32 feature matrix X and a label vector y.
3. Fit Pipeline(StandardScaler, LogisticRegression) on a stratified train/validation split
   and measure accuracy, precision, recall, f1, roc_auc and log_loss on the validation rows.
4. Export the fitted pipeline as ONNX, check the ONNX graph reproduces the pipeline, and
   write `model.onnx` and `metrics.json` under CICLO_OUTPUT_URI (the artifact store).
5. Report the summary the operator reads ({"outcome", "metrics", "model", "digest", "rows"})
   in the termination message.

The script writes nothing to local disk: every byte it reads or writes is kept in memory and
streamed to or from the object stores, so it runs on a read-only root filesystem as any user.
It handles binary classification only (two labels in the target column).
"""

import csv
import io
import json
import math
import os
import signal
import sys
import urllib.parse
import warnings
from datetime import timedelta

import blake3
import numpy as np
import obstore
from obstore.exceptions import NotFoundError, UnknownConfigurationKeyError
from obstore.store import LocalStore, from_url

# scikit-learn, skl2onnx and onnx are imported where they are used (fit, measure,
# export_onnx, check_onnx), after the cheap checks of the environment, the parameters and the
# data, so a misconfigured run fails in milliseconds instead of after seconds of imports.

# --------------------------------------------------------------------------------------
# The contract's names (operator/core/src/contract.rs).
# --------------------------------------------------------------------------------------

ENV_DATASET_URI = "CICLO_DATASET_URI"
ENV_DATASET_VERSION = "CICLO_DATASET_VERSION"
ENV_DATASET_MANIFEST = "CICLO_DATASET_MANIFEST"
ENV_OUTPUT_URI = "CICLO_OUTPUT_URI"
ENV_PARAMS = "CICLO_PARAMS"
SOURCE_ENV_PREFIX = "CICLO_SOURCE_"
ARTIFACTS_ENV_PREFIX = "CICLO_ARTIFACTS_"

# Kubernetes mounts the container's termination message file here. CICLO_TERMINATION_LOG
# points it elsewhere for a run outside Kubernetes (see the README); without it, and outside
# a pod (no such file), the summary only goes to standard output.
TERMINATION_LOG = "/dev/termination-log"
ENV_TERMINATION_LOG = "CICLO_TERMINATION_LOG"
# The kubelet keeps at most 4096 bytes of the termination message.
TERMINATION_MESSAGE_LIMIT = 4096
# A failure's message is cut to this many characters in the termination message (as the
# built-in trainer does); the log has all of it.
MAX_MESSAGE_CHARS = 800

MODEL_FILE = "model.onnx"
METRICS_FILE = "metrics.json"

# The ONNX opsets the exporter may use: ONNX 17 and ai.onnx.ml 3 (ONNX 1.12, ONNX Runtime
# 1.12 and later). skl2onnx writes, per domain, the lowest version the graph's nodes need
# up to these, so the file's opset_import can be lower (14 and 1 for this pipeline).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

# The model's inputs and outputs, as a client of the served model names them.
INPUT_NAME = "input"
LABEL_OUTPUT = "output_label"
PROBABILITY_OUTPUT = "output_probability"
# The name given to the free first dimension of the inputs and outputs.
BATCH_DIM = "batch"

# The hyperparameters this trainer reads from CICLO_PARAMS, with their defaults (strings,
# as a TrainingRun's spec.params are).
DEFAULT_PARAMS = {
    "target": "diagnosis",
    "features": "",  # empty: every column but the target
    "C": "1.0",
    "max_iter": "1000",
    "test_size": "0.25",
    "seed": "0",
}


class Failure(Exception):
    """A run that cannot produce a model, with one of the reasons of the operator's
    TrainFailureReason (operator/core/src/train_result.rs):

    - DatasetUnavailable: the manifest or a file of the version could not be read.
    - DatasetChanged: a file no longer has the size or hash the manifest records.
    - InvalidSpec: a parameter, the target or a feature column is wrong for this data.
    - OutputUnavailable: the model or the metrics could not be written.
    - TrainingFailed: the data was read but no model came of it.
    """

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def log(message):
    """Progress goes to standard error, which ends up in the Job's log."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Object stores.
#
# obstore is the Python binding of Rust's object_store crate, the library ciclo itself uses,
# so the contract's settings map one to one: CICLO_SOURCE_AWS_ENDPOINT is object_store's
# `aws_endpoint` for the dataset's source, CICLO_ARTIFACTS_AWS_REGION its `aws_region` for
# the artifact store, and so on.
# --------------------------------------------------------------------------------------

# The settings object_store keeps in its HTTP client configuration rather than in a store's.
# obstore takes these as `client_options`, without the store's `aws_` prefix: given to an
# S3 store's `config` as `aws_allow_http`, obstore 0.12 panics instead of failing cleanly.
CLIENT_SETTINGS = {
    "allow_http",
    "allow_invalid_certificates",
    "connect_timeout",
    "default_content_type",
    "http1_only",
    "http2_keep_alive_interval",
    "http2_keep_alive_timeout",
    "http2_keep_alive_while_idle",
    "http2_only",
    "pool_idle_timeout",
    "pool_max_idle_per_host",
    "proxy_url",
    "proxy_ca_certificate",
    "proxy_excludes",
    "randomize_addresses",
    "read_timeout",
    "root_certificate",
    "timeout",
    "user_agent",
}

# Which settings a URL scheme's store reads: the environment names' family after the prefix.
FAMILY_OF_SCHEME = {
    "s3": "aws_",
    "s3a": "aws_",
    "gs": "google_",
    "az": "azure_",
    "adl": "azure_",
    "azure": "azure_",
    "abfs": "azure_",
    "abfss": "azure_",
}
FAMILIES = ("aws_", "google_", "azure_")

# Give up on an unreachable store within about half a minute (object_store's default keeps
# retrying for minutes), as ciclo's own workloads do: the Job's backoffLimit retries the run.
RETRY = {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}


def store_settings(env, prefix, scheme):
    """The object_store settings for a store of `scheme` among the environment variables
    `<prefix>AWS_…`, `<prefix>GOOGLE_…` and `<prefix>AZURE_…`: (config, client_options),
    by object_store's names in lower case. Values are never logged: keys are among them."""
    family = FAMILY_OF_SCHEME.get(scheme)
    config, client = {}, {}
    for name, value in env.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :].lower()
        owner = next((f for f in FAMILIES if key.startswith(f)), None)
        if owner is None:
            continue  # not a store setting (e.g. CICLO_SOURCE_PATH)
        if owner != family:
            continue  # another kind of store's setting, as object_store ignores it
        bare = key[len(owner) :]
        if bare in CLIENT_SETTINGS:
            client[bare] = value  # AWS_ALLOW_HTTP is the client's `allow_http`
        else:
            config[key] = value
    if family == "aws_":
        has_keys = "aws_access_key_id" in config
        custom_endpoint = any(k in config for k in ("aws_endpoint", "aws_endpoint_url"))
        if custom_endpoint and not has_keys:
            # An S3-compatible endpoint without keys is reached anonymously, as ciclo's own
            # workloads do: never look for a cloud's instance-metadata credentials.
            config.setdefault("aws_skip_signature", "true")
    return config, client


def open_store(uri, prefix):
    """The store holding `uri` and the object key of `uri` in it.

    `file:///dir/x` opens the local filesystem (key `dir/x`; no settings apply);
    `s3://bucket/key` opens the bucket with the settings under `prefix`."""
    url = urllib.parse.urlsplit(uri)
    scheme = url.scheme.lower()
    key = urllib.parse.unquote(url.path).strip("/")
    if scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise ValueError(f"{uri!r}: a file URI names no host (file:///path)")
        return LocalStore(), key
    if not scheme or not url.netloc:
        raise ValueError(f"{uri!r} is not a store URI (s3://bucket/prefix, file:///dir, …)")
    config, client = store_settings(os.environ, prefix, scheme)
    root = f"{scheme}://{url.netloc}"
    # object_store ignores the settings a store does not know (a Secret may hold other keys);
    # obstore refuses them, so leave those out, naming them. Each setting is tried alone: a
    # store of one setting may be incomplete (a key id without its secret), which the full
    # store below reports if it still is.
    for setting in list(config):
        try:
            from_url(root, config={setting: config[setting]})
        except UnknownConfigurationKeyError:
            log(f"ignoring {prefix}{setting.upper()}: not a setting of a {scheme}:// store")
            del config[setting]
        except Exception:
            pass
    store = from_url(root, config=config, client_options=client, retry_config=RETRY)
    return store, key


def join(*parts):
    """An object key of `parts`, `/`-separated, without empty parts."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def read_object(store, key):
    """The whole object as bytes (kept in memory: nothing is written to local disk)."""
    return bytes(obstore.get(store, key).bytes())


# --------------------------------------------------------------------------------------
# The dataset version.
# --------------------------------------------------------------------------------------


def version_id(files):
    """The version id ciclo gives a manifest (operator/snapshot/src/manifest.rs): the first
    32 hex digits of the BLAKE3 of its "path<TAB>size<TAB>hash<LF>" lines, sorted by path."""
    hasher = blake3.blake3()
    for f in sorted(files, key=lambda f: f["path"].encode()):
        hasher.update(f"{f['path']}\t{f['size']}\t{f['blake3']}\n".encode())
    return hasher.hexdigest()[:32]


def read_manifest(uri, expected_version):
    """The manifest's file entries: [{"path", "size", "blake3"}, …]."""
    try:
        store, key = open_store(uri, ARTIFACTS_ENV_PREFIX)
        raw = read_object(store, key)
    except Exception as e:
        raise Failure("DatasetUnavailable", f"manifest {uri}: {short(e)}") from e
    try:
        files = json.loads(raw)["files"]
        for f in files:
            if not (
                isinstance(f["path"], str)
                and isinstance(f["size"], int)
                and isinstance(f["blake3"], str)
            ):
                raise TypeError("an entry's path, size and blake3 must be text, a number, text")
    except (ValueError, KeyError, TypeError) as e:
        raise Failure("DatasetUnavailable", f"manifest {uri} is not a ciclo manifest: {e}") from e
    if not files:
        raise Failure("DatasetUnavailable", f"manifest {uri} lists no files")
    if expected_version and version_id(files) != expected_version:
        raise Failure(
            "DatasetUnavailable",
            f"manifest {uri} is version {version_id(files)}, not {ENV_DATASET_VERSION}="
            f"{expected_version}",
        )
    return files


def fetch_files(source_uri, files):
    """Each manifest file's bytes, by path, checked against the manifest's size and BLAKE3:
    a file that changed since the snapshot means the source no longer holds this version."""
    try:
        store, prefix = open_store(source_uri, SOURCE_ENV_PREFIX)
    except Exception as e:
        raise Failure("DatasetUnavailable", f"source {source_uri}: {short(e)}") from e
    contents = {}
    for f in files:
        path = f["path"]
        try:
            data = read_object(store, join(prefix, path))
        except (FileNotFoundError, NotFoundError) as e:
            raise Failure(
                "DatasetChanged",
                f"{path} is gone from {source_uri}: the source no longer holds this version",
            ) from e
        except Exception as e:
            raise Failure("DatasetUnavailable", f"{path} in {source_uri}: {short(e)}") from e
        if len(data) != f["size"]:
            raise Failure(
                "DatasetChanged",
                f"{path} has {len(data)} bytes, the manifest records {f['size']}: "
                "the source no longer holds this version",
            )
        digest = blake3.blake3(data).hexdigest()
        if digest != f["blake3"].lower():
            raise Failure(
                "DatasetChanged",
                f"{path} has BLAKE3 {digest}, the manifest records {f['blake3']}: "
                "the source no longer holds this version",
            )
        contents[path] = data
        log(f"read {path}: {len(data)} bytes, BLAKE3 checked")
    return contents


# --------------------------------------------------------------------------------------
# Parameters.
# --------------------------------------------------------------------------------------


def read_params(text):
    """The parameters in effect (every default filled in) and the names given that this
    trainer does not read (ignored, as the built-in trainer does, and listed in metrics.json).
    Values are strings; numbers and booleans are taken as their text."""
    try:
        given = json.loads(text) if text and text.strip() else {}
    except ValueError as e:
        raise Failure("InvalidSpec", f"{ENV_PARAMS} is not JSON: {e}") from e
    if not isinstance(given, dict):
        raise Failure("InvalidSpec", f"{ENV_PARAMS} must be a JSON object of strings")
    params = dict(DEFAULT_PARAMS)
    for name, value in given.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise Failure("InvalidSpec", f"param {name!r} must be a string, got {value!r}")
        params[name] = value
    ignored = sorted(set(given) - set(DEFAULT_PARAMS))
    return params, ignored


def number(params, name, kind, check, bar):
    """The parameter `name` as `kind` (int or float) satisfying `check`; else InvalidSpec
    naming the parameter and `bar`, what it must be."""
    text = params[name].strip()
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or (kind is float and not math.isfinite(value)) or not check(value):
        raise Failure("InvalidSpec", f"param {name!r} must be {bar}, got {params[name]!r}")
    return value


def hyperparameters(params):
    """The numeric parameters, checked."""
    return {
        "C": number(params, "C", float, lambda v: v > 0, "a positive number (inverse L2 strength)"),
        "max_iter": number(params, "max_iter", int, lambda v: v >= 1, "a whole number >= 1"),
        "test_size": number(
            params, "test_size", float, lambda v: 0 < v < 1, "a fraction between 0 and 1"
        ),
        "seed": number(params, "seed", int, lambda v: 0 <= v < 2**32, "a whole number >= 0"),
    }


# --------------------------------------------------------------------------------------
# The table: CSV files with a header row.
# --------------------------------------------------------------------------------------


def parse_csv_files(contents, target, features_param):
    """X (float32, rows × features), the raw labels, the feature names and the number of rows
    dropped because a used cell was empty, NaN or infinite. The files are read in manifest
    (path) order; each must have a header row naming the target and every feature."""
    features = [c.strip() for c in features_param.split(",")] if features_param.strip() else None
    if features is not None:
        if any(not c for c in features):
            raise Failure("InvalidSpec", f"param 'features' has an empty name: {features_param!r}")
        if len(set(features)) != len(features):
            raise Failure(
                "InvalidSpec", f"param 'features' names a column twice: {features_param!r}"
            )
        if target in features:
            raise Failure("InvalidSpec", f"param 'features' lists the target {target!r}")
    rows_x, labels, dropped = [], [], 0
    for path, data in contents.items():
        try:
            text = data.decode("utf-8-sig")  # tolerate a byte-order mark
        except UnicodeDecodeError as e:
            raise Failure("InvalidSpec", f"{path} is not UTF-8 text: {e}") from e
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader, [])]
        if target not in header:
            raise Failure(
                "InvalidSpec",
                f"param 'target': {path} has no column {target!r} (columns: {preview(header)})",
            )
        if features is None:
            # Every column but the target, as the first file names them.
            features = [h for h in header if h != target]
            if not features:
                raise Failure("InvalidSpec", f"{path} has no column besides the target {target!r}")
        missing = [c for c in features if c not in header]
        if missing:
            given = "param 'features': " if features_param.strip() else ""
            raise Failure(
                "InvalidSpec",
                f"{given}{path} has no column {preview(missing)} (columns: {preview(header)})",
            )
        t = header.index(target)
        idx = [header.index(c) for c in features]
        for cells in reader:
            line = reader.line_num
            if not cells:
                continue  # a blank line
            if len(cells) != len(header):
                raise Failure(
                    "InvalidSpec",
                    f"{path} line {line} has {len(cells)} cells, the header {len(header)}",
                )
            label = cells[t].strip()
            values = []
            for i, c in zip(idx, features, strict=True):
                cell = cells[i].strip()
                try:
                    values.append(float(cell) if cell else math.nan)
                except ValueError:
                    hint = (
                        ""
                        if features_param.strip()
                        else " (list numeric columns in param 'features')"
                    )
                    raise Failure(
                        "InvalidSpec",
                        f"column {c!r} is not numeric: {path} line {line} has {cell[:40]!r}{hint}",
                    ) from None
            if not label or not all(math.isfinite(v) for v in values):
                dropped += 1  # a missing label or value, NaN or infinity
                continue
            rows_x.append(values)
            labels.append(label)
    X = np.asarray(rows_x, dtype=np.float32).reshape(len(rows_x), len(features))
    if not np.isfinite(X).all():
        # A value too large for float32 (above 3.4e38) becomes infinity when cast.
        raise Failure("InvalidSpec", "a feature value does not fit in a 32-bit float")
    return X, labels, features, dropped


def preview(names, limit=8):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


# --------------------------------------------------------------------------------------
# Training, metrics and the ONNX export.
# --------------------------------------------------------------------------------------


def encode_labels(labels):
    """The two classes, sorted (as text), and y as each row's class index (int64).

    The positive class of f1, precision, recall and roc_auc is the one that sorts last: `M`
    (malignant) for WDBC's `B`/`M`. The model outputs these indices, not the label text (see
    export_onnx), so output_label 1 and output_probability[:, 1] are the positive class."""
    classes = sorted(set(labels))
    if len(classes) != 2:
        raise Failure(
            "TrainingFailed",
            f"the target has {len(classes)} classes ({preview(classes)}); this trainer is "
            "binary and needs exactly two",
        )
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[v] for v in labels], dtype=np.int64)


def fit(X, y, hp):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        # Stratified: the validation rows keep the classes' shares, so small datasets do not
        # end up with a lopsided (or one-class) validation set.
        X_train, X_val, y_train, y_val = train_test_split(
            X, y, test_size=hp["test_size"], random_state=hp["seed"], stratify=y
        )
    except ValueError as e:
        raise Failure("TrainingFailed", f"cannot split {len(y)} rows: {e}") from e
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=hp["C"], max_iter=hp["max_iter"])),
        ]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit(X_train, y_train)
        except ValueError as e:
            raise Failure("TrainingFailed", f"fitting failed: {e}") from e
    for w in caught:
        # e.g. ConvergenceWarning: raise param max_iter.
        log(f"warning: {w.category.__name__}: {w.message}")
    return pipeline, X_val, y_val, len(y_train)


def measure(pipeline, X_val, y_val):
    """The validation metrics; class 1 is the positive class."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    proba = pipeline.predict_proba(X_val)
    predicted = pipeline.predict(X_val)
    metrics = {
        "accuracy": accuracy_score(y_val, predicted),
        "precision": precision_score(y_val, predicted, pos_label=1, zero_division=0),
        "recall": recall_score(y_val, predicted, pos_label=1, zero_division=0),
        "f1": f1_score(y_val, predicted, pos_label=1, zero_division=0),
        "roc_auc": roc_auc_score(y_val, proba[:, 1]),
        "log_loss": log_loss(y_val, proba, labels=[0, 1]),
    }
    # Finite numbers only: the operator's gates read them, and JSON has no NaN.
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def export_onnx(pipeline, n_features, classes, target, features):
    """The pipeline as ONNX bytes.

    - One input, `input`: float32 [batch, n_features], the features in `features`' order.
    - `output_label`: int64 [batch], the class index (0 = classes[0], 1 = classes[1]).
    - `output_probability`: float32 [batch, 2], each class's probability, in index order.

    The labels are trained and exported as indices 0/1 rather than as text: with text labels
    skl2onnx outputs a string tensor, which ONNX Runtime serves but numeric runtimes (tract,
    the pure-Rust ONNX runtime, among them) do not. The class names are in the model's
    metadata (`classes`) and in metrics.json.

    For the same reason the graph is built from standard ONNX operators where skl2onnx has
    a choice: Sub and Div instead of ai.onnx.ml's Scaler, MatMul, Add and Sigmoid instead of
    its LinearClassifier. The one ai.onnx.ml node left is ArrayFeatureExtractor (index to
    label), which tract also runs. `zipmap: False` makes the probabilities a plain tensor
    rather than a sequence of maps."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

    scaler = pipeline.named_steps["scale"]
    model = convert_sklearn(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        final_types=[
            (LABEL_OUTPUT, Int64TensorType([None])),
            (PROBABILITY_OUTPUT, FloatTensorType([None, 2])),
        ],
        target_opset=TARGET_OPSET,
        options={id(pipeline): {"zipmap": False}, id(scaler): {"div": "div_cast"}},
        black_op={"Scaler", "LinearClassifier"},
    )
    # Name the free batch dimension: ONNX Runtime takes any size either way, and tract needs
    # a name (a symbol) for it to run without being told the input's shape.
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.dim_value and not dim.dim_param:
            dim.dim_param = BATCH_DIM
    # The same data and params give the same bytes, so the same digest: skl2onnx names the
    # graph with a random id and lists the opsets in an order that varies between runs.
    model.graph.name = "sklearn_logistic_regression"
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.add(domain=domain, version=version)
    model.doc_string = (
        f"scikit-learn Pipeline(StandardScaler, LogisticRegression) predicting {target!r}: "
        f"output_label is the class index, 0 = {classes[0]!r}, 1 = {classes[1]!r}"
    )
    for key, value in {
        "target": target,
        "classes": json.dumps(classes),
        "features": json.dumps(features),
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def check_onnx(model_bytes, pipeline, X_val):
    """Runs the exported graph with ONNX's reference evaluator on the validation rows and
    checks it gives the pipeline's probabilities and labels: the metrics are the pipeline's,
    so the served file must answer as the pipeline does."""
    from onnx import load_from_string
    from onnx.reference import ReferenceEvaluator

    with np.errstate(over="ignore"):  # exp overflows to a probability of 0 or 1, as it should
        labels, proba = ReferenceEvaluator(load_from_string(model_bytes)).run(
            None, {INPUT_NAME: X_val}
        )
    expected = pipeline.predict_proba(X_val)
    gap = float(np.max(np.abs(proba - expected))) if len(X_val) else 0.0
    # A row within float32 rounding of 0.5 may go either way; every other must agree.
    clear = np.abs(expected[:, 1] - 0.5) > 1e-5
    if gap > 1e-4 or not np.array_equal(labels[clear], pipeline.predict(X_val)[clear]):
        raise Failure(
            "TrainingFailed",
            f"the ONNX export does not reproduce the pipeline (probabilities differ by {gap:.2g})",
        )
    return gap


# --------------------------------------------------------------------------------------
# Results.
# --------------------------------------------------------------------------------------


def write_outputs(output_uri, model_bytes, metrics_doc):
    """Writes model.onnx, then metrics.json, under `output_uri`; the model's URI."""
    try:
        store, prefix = open_store(output_uri, ARTIFACTS_ENV_PREFIX)
        obstore.put(store, join(prefix, MODEL_FILE), model_bytes)
        metrics_json = json.dumps(metrics_doc, indent=2, sort_keys=True) + "\n"
        obstore.put(store, join(prefix, METRICS_FILE), metrics_json.encode())
    except Exception as e:
        raise Failure("OutputUnavailable", f"writing to {output_uri}: {short(e)}") from e
    return f"{output_uri.rstrip('/')}/{MODEL_FILE}"


def report(summary):
    """The summary as the last line of standard output and in the termination message,
    where the operator reads it."""
    message = json.dumps(summary, separators=(",", ":"))
    print(message, flush=True)
    path = os.environ.get(ENV_TERMINATION_LOG)
    if not path and not os.path.exists(TERMINATION_LOG):
        log(f"{TERMINATION_LOG} does not exist (not in a pod): the summary is only printed")
        return
    try:
        with open(path or TERMINATION_LOG, "w", encoding="utf-8") as f:
            f.write(message)
    except OSError as e:
        log(f"cannot write the termination message to {path or TERMINATION_LOG}: {e}")


def failure_summary(failure, rows):
    """The summary of a failed run, as the built-in trainer writes it: short enough for the
    termination message, whose start the operator records as the run's failure."""
    message = failure.message
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    summary = {
        "outcome": "Failed",
        "rows": rows,
        "failure": {"reason": failure.reason, "message": message},
    }
    while len(json.dumps(summary).encode()) > TERMINATION_MESSAGE_LIMIT:
        message = message[: len(message) // 2] + "…"
        summary["failure"]["message"] = message
    return summary


def short(error):
    """An exception's first line: obstore's errors go on with a debug dump."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def require_env(name):
    value = os.environ.get(name, "").strip()
    if not value:
        raise Failure("InvalidSpec", f"{name} is not set: this image runs as a ciclo TrainingRun")
    return value


# --------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------


def train(rows):
    """One run; fills `rows` as it learns the counts. Returns the success summary."""
    manifest_uri = require_env(ENV_DATASET_MANIFEST)
    source_uri = require_env(ENV_DATASET_URI)
    output_uri = require_env(ENV_OUTPUT_URI)
    version = os.environ.get(ENV_DATASET_VERSION, "").strip()
    params, ignored = read_params(os.environ.get(ENV_PARAMS, ""))
    hp = hyperparameters(params)
    target = params["target"].strip()
    if not target:
        raise Failure("InvalidSpec", "param 'target' is empty")
    if ignored:
        log(f"ignoring params this trainer does not read: {', '.join(ignored)}")

    files = read_manifest(manifest_uri, version)
    log(f"dataset version {version or '(unnamed)'}: {len(files)} files")
    contents = fetch_files(source_uri, files)
    X, labels, features, dropped = parse_csv_files(contents, target, params["features"])
    del contents
    rows["dropped"] = dropped
    log(f"{len(labels)} rows, {len(features)} features, {dropped} rows dropped (missing values)")
    classes, y = encode_labels(labels)

    pipeline, X_val, y_val, n_train = fit(X, y, hp)
    rows["train"], rows["validation"] = n_train, len(y_val)
    metrics = measure(pipeline, X_val, y_val)
    log(
        f"trained on {n_train} rows; on {len(y_val)} validation rows: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
    )

    model_bytes = export_onnx(pipeline, len(features), classes, target, features)
    gap = check_onnx(model_bytes, pipeline, X_val)
    digest = "blake3:" + blake3.blake3(model_bytes).hexdigest()
    log(f"ONNX model: {len(model_bytes)} bytes, {digest}; reproduces the pipeline within {gap:.1g}")

    metrics_doc = {
        **metrics,
        "rows": dict(rows),
        "split": {
            "testFraction": hp["test_size"],
            "seed": hp["seed"],
            "method": "stratified (scikit-learn train_test_split)",
        },
        "datasetVersion": version,
        "algorithm": "scikit-learn Pipeline(StandardScaler, LogisticRegression)",
        "params": params,
        "ignoredParams": ignored,
        "target": target,
        "features": features,
        "classes": classes,
        "positiveClass": classes[1],
        "model": {"file": MODEL_FILE, "digest": digest, "format": "onnx"},
    }
    model_uri = write_outputs(output_uri, model_bytes, metrics_doc)
    log(f"wrote {model_uri} and {METRICS_FILE}")
    return {
        "outcome": "Succeeded",
        "metrics": metrics,
        "model": model_uri,
        "digest": digest,
        "rows": dict(rows),
    }


def main():
    # As the container's PID 1, Python would ignore SIGTERM (the kernel delivers PID 1 no
    # signal it has no handler for), and the kubelet would wait out the grace period when the
    # Job is deleted or passes activeDeadlineSeconds: stop at once instead.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    rows = {"train": 0, "validation": 0, "dropped": 0}
    try:
        summary = train(rows)
    except Failure as f:
        log(f"failed: {f.reason}: {f.message}")
        report(failure_summary(f, rows))
        return 1
    except Exception as e:  # a bug or an environment problem: still say what happened
        import traceback

        traceback.print_exc()
        report(failure_summary(Failure("TrainingFailed", f"{type(e).__name__}: {short(e)}"), rows))
        return 1
    report(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
