"""The Flower app's components, in the simulation runtime and on the deployment runtime alike
(the app folder's pyproject.toml names them; `flwr run` ships that folder to the SuperLink):
module-level objects, as Flower requires, that read the federation's settings from the run
config at call time.

The run config's `settings` is the JSON of the settings `speechmask federate` prepared (paths on
the SuperLink's machine for the server; `out` is where it writes `state.pt`). A SuperNode's
`--node-config` gives its `partition-id` and, on a machine of its own, `data-dir`: the folder with
that device's masked features (default: the settings' data folder, `client_<partition-id>`).
With `--secure-aggregation` the app names the SecAgg+ pair instead (`secure_serverapp`,
`secure_clientapp`: secure.py's workflow)."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context, Message
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from .apps import _audit_mod, run_server, train_on_device
from .secure import run_secure_server, secure_client_fn


def settings_of(context: Context) -> dict:
    return json.loads(str(context.run_config["settings"]))


clientapp = ClientApp(mods=[_audit_mod()])


@clientapp.train()
def train(msg: Message, context: Context) -> Message:
    settings = settings_of(context)
    pid = int(context.node_config["partition-id"])
    data_dir = context.node_config.get("data-dir") or Path(settings["data_dir"]) / f"client_{pid}"
    return train_on_device(msg, context, settings, Path(str(data_dir)))


serverapp = ServerApp()


def _recorder(settings: dict):
    from .recorder import STATE, Recorder, empty_history, load_state

    out = Path(settings["out"])
    start = int(settings.get("round_offset", 0))
    history = load_state(out / STATE)["history"] if start > 0 else empty_history()
    return Recorder(settings, out, start, {**empty_history(), **history})


@serverapp.main()
def main(grid: Grid, context: Context) -> None:
    settings = settings_of(context)
    recorder = _recorder(settings)
    run_server(grid, settings, recorder.on_round, recorder.on_result)


secure_clientapp = ClientApp(client_fn=secure_client_fn(settings_of), mods=[secaggplus_mod])
secure_serverapp = ServerApp()


@secure_serverapp.main()
def secure_main(grid: Grid, context: Context) -> None:
    settings = settings_of(context)
    run_secure_server(grid, context, settings, _recorder(settings))
