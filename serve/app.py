"""The Ray Serve application: `StreamServer` with the deployment options that serving streams needs.

`build_app` is what `svgan-serve` runs; `app_builder` is the same for a Ray Serve config file or a KubeRay
RayService (`import_path: svgan.serve.app:app_builder`, its `args` are `ServeConfig`'s fields plus `replicas`,
`num_cpus` and `num_gpus` per replica).
"""

from __future__ import annotations

from ray.serve import Application

from .config import ServeConfig
from .server import StreamServer

APP_NAME = "svgan"
# Open streams count as ongoing requests (DESIGN §9d). The headroom keeps a full replica able to answer
# /healthz and to turn further streams away with its own 503 instead of Serve queueing them.
REQUEST_HEADROOM = 32


def build_app(config: ServeConfig, replicas: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0) -> Application:
    return StreamServer.options(
        num_replicas=replicas,
        max_ongoing_requests=config.max_streams + REQUEST_HEADROOM,
        max_queued_requests=4 * REQUEST_HEADROOM,  # beyond that Serve's proxy answers 503 itself
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        # Streams are long; a stopping replica ends its own at once rather than after Serve's default 20 s.
        graceful_shutdown_timeout_s=2.0,
        graceful_shutdown_wait_loop_s=0.5,
        health_check_period_s=2.0,
    ).bind(config)


def app_builder(args: dict) -> Application:
    args = dict(args)
    deployment = {key: args.pop(key) for key in ("replicas", "num_cpus", "num_gpus") if key in args}
    return build_app(ServeConfig.from_dict(args), **deployment)
