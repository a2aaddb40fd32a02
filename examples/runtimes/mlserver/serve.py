"""The image's entrypoint: Seldon MLServer serving one ONNX model under ciclo's serving contract.

The contract's variables (docs/workload-contract.md, "Serving images") become MLServer's own
settings variables, and MLServer then starts in this process, as `mlserver start` would, with
the one model they describe:

    CICLO_POD_IP (else 0.0.0.0)  -> MLSERVER_HOST (HTTP and metrics listen there)
    CICLO_PORT (else 8080)       -> MLSERVER_HTTP_PORT
    CICLO_MODEL_NAME             -> MLSERVER_MODEL_NAME
    CICLO_MODEL_VERSION          -> MLSERVER_MODEL_VERSION
    CICLO_MODEL_URI              -> MLSERVER_MODEL_URI (read by onnx_runtime.OnnxRuntime, which
                                    also checks CICLO_MODEL_DIGEST and reads CICLO_ARTIFACTS_*)

and, whatever the environment says:

    MLSERVER_MODEL_IMPLEMENTATION=onnx_runtime.OnnxRuntime
    MLSERVER_PARALLEL_WORKERS=0      the model runs in this process: no worker processes, so
                                     no multiprocess metrics directory (nothing to write) and
                                     no uvloop issue in workers (SeldonIO/MLServer#2286)
    MLSERVER_MODEL_REPOSITORY_ROOT=  no directory scan for model-settings.json files: the
                                     repository API lists the model above, from the variables
    MLSERVER_METRICS_ENDPOINT=/metrics

and, unless set already: MLSERVER_METRICS_PORT=8082 (MLServer's own) and MLSERVER_DEBUG=false
(no tracebacks in 500 answers, no access log).

gRPC is off: the contract serves HTTP only (the Service has no gRPC port), and MLServer 1.7.1
joins host and port for gRPC as `host:port`, which fails on an IPv6 pod address.

SIGTERM (or SIGINT) stops the server: it accepts no new connection, lets the requests in
flight finish, and exits 0. Under ciclo the pod gets the signal only after a 5 s preStop sleep
while the Service drops it, so stopping at once loses nothing; elsewhere, `--drain-seconds N`
keeps answering N seconds after the signal first (a second signal stops it at once). A model
that cannot be loaded (unreadable, wrong digest, not a model) stops the server, exit code 1.
"""

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import sys

IMPLEMENTATION = "onnx_runtime.OnnxRuntime"
DEFAULT_PORT = 8080
METRICS_PORT = 8082


class ConfigError(Exception):
    pass


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={value!r} is not a port number")
    return port


def mlserver_environment(env) -> dict:
    """MLServer's settings variables for the serving contract's `env`."""
    name = env.get("CICLO_MODEL_NAME", "").strip()
    if not name:
        raise ConfigError("CICLO_MODEL_NAME is not set")
    uri = env.get("CICLO_MODEL_URI", "").strip()
    if not uri:
        raise ConfigError("CICLO_MODEL_URI is not set")
    host = env.get("CICLO_POD_IP", "").strip() or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"CICLO_POD_IP={host!r} is not an IP address") from None
    http_port = _port("CICLO_PORT", env.get("CICLO_PORT", "").strip() or str(DEFAULT_PORT))
    metrics_port = _port(
        "MLSERVER_METRICS_PORT", env.get("MLSERVER_METRICS_PORT", str(METRICS_PORT))
    )
    if http_port == metrics_port:
        raise ConfigError(
            f"CICLO_PORT={http_port} is MLServer's metrics port: choose another "
            "spec.runtime.port"
        )

    settings = {
        "MLSERVER_HOST": host,
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_METRICS_PORT": str(metrics_port),
        "MLSERVER_METRICS_ENDPOINT": "/metrics",
        "MLSERVER_PARALLEL_WORKERS": "0",
        "MLSERVER_MODEL_REPOSITORY_ROOT": "",
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "true",
        "MLSERVER_MODEL_NAME": name,
        "MLSERVER_MODEL_IMPLEMENTATION": IMPLEMENTATION,
        "MLSERVER_MODEL_URI": uri,
        "MLSERVER_DEBUG": env.get("MLSERVER_DEBUG", "false"),
    }
    version = env.get("CICLO_MODEL_VERSION", "").strip()
    if version:
        settings["MLSERVER_MODEL_VERSION"] = version
    return settings


def _drain(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 25:
        raise argparse.ArgumentTypeError(f"{value!r} is not between 0 and 25")
    return seconds


def arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="serve.py",
        description="MLServer serving CICLO_MODEL_URI (an ONNX file) on CICLO_PORT.",
    )
    parser.add_argument(
        "--drain-seconds",
        type=_drain,
        default=0.0,
        help="seconds to keep answering after SIGTERM before stopping (default 0: ciclo's "
        "preStop sleep already does it)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = arguments(sys.argv[1:] if argv is None else argv)
    try:
        os.environ.update(mlserver_environment(os.environ))
    except ConfigError as e:
        print(f"serve.py: {e}", file=sys.stderr, flush=True)
        return 2

    # Imported once the environment holds MLServer's settings.
    import uvicorn
    from mlserver import MLServer
    from mlserver.handlers import DataPlane
    from mlserver.logging import configure_logger, logger
    from mlserver.settings import ModelParameters, ModelSettings, Settings
    from mlserver.utils import install_uvloop_event_loop

    class _GRPCOff:
        async def start(self):
            pass

        async def stop(self, sig=None):
            pass

    class Server(MLServer):
        # MLServer 1.7.1 has no setting to turn gRPC off: its gRPC server is replaced by one
        # that does nothing.
        def _create_servers(self):
            super()._create_servers()
            self._grpc_server = _GRPCOff()

    async def ready(self) -> bool:
        # MLServer 1.7.1 counts a server without any model as ready: a model that fails to
        # load is dropped from the registry, and the (stopping) server would answer 200 for a
        # moment; so would one whose model was unloaded through the repository API. Here the
        # one model must be there, and loaded.
        models = list(await self._model_registry.get_models())
        return bool(models) and all(model.ready for model in models)

    DataPlane.ready = ready

    # MLServer 1.7.1 means its uvicorn servers to leave signals alone, but uvicorn (0.29 on)
    # takes SIGINT and SIGTERM itself while it serves, and then raises them again on its way
    # out: signals are left to the handlers below.
    uvicorn.Server.capture_signals = lambda self: contextlib.nullcontext()

    async def serve() -> int:
        settings = Settings()
        model_settings = ModelSettings()
        model_settings.parameters = ModelParameters()
        server = Server(settings)

        loop = asyncio.get_running_loop()
        stopping = []

        async def stop(sig: int, delay: float):
            if delay:
                await asyncio.sleep(delay)
            await server.stop(sig)

        def on_signal(sig: int):
            name = signal.Signals(sig).name
            if stopping:
                logger.info("%s again: stopping now", name)
                delay = 0.0
            elif args.drain_seconds:
                logger.info("%s: answering %gs more, then stopping", name, args.drain_seconds)
                delay = args.drain_seconds
            else:
                logger.info("%s: stopping", name)
                delay = 0.0
            stopping.append(asyncio.create_task(stop(sig, delay)))

        # In place of MLServer's own handlers (set as it is created).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            loop.add_signal_handler(sig, on_signal, sig)

        await server.start([model_settings])
        if stopping:
            logger.info("Stopped")
            return 0
        logger.error("The model could not be loaded: stopped (see above)")
        return 1

    configure_logger()
    install_uvloop_event_loop()
    return asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
