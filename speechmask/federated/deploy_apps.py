"""The Flower app's components on the deployment runtime (the app folder's pyproject.toml names
them; `flwr run` ships that folder to the SuperLink): module-level objects, as Flower requires,
that read the federation's settings from the run config at call time.

The run config's `settings` is the JSON of the settings `speechmask federate` prepared (paths on
the SuperLink's machine for the server; `out` is where it writes `state.pt`). A SuperNode's
`--node-config` gives its `partition-id` and, on a machine of its own, `data-dir`: the folder with
that device's masked features (default: the settings' data folder, `client_<partition-id>`)."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from .apps import _audit_mod, run_server, train_on_device


def settings_of(context: Context) -> dict:
    return json.loads(str(context.run_config["settings"]))


clientapp = ClientApp(mods=[_audit_mod(None)])


@clientapp.train()
def train(msg: Message, context: Context) -> Message:
    settings = settings_of(context)
    pid = int(context.node_config["partition-id"])
    data_dir = context.node_config.get("data-dir") or Path(settings["data_dir"]) / f"client_{pid}"
    return train_on_device(msg, context, settings, Path(str(data_dir)))


serverapp = ServerApp()


@serverapp.main()
def main(grid: Grid, context: Context) -> None:
    from .recorder import STATE, Recorder, empty_history, load_state

    settings = settings_of(context)
    out = Path(settings["out"])
    start = int(settings.get("round_offset", 0))
    history = load_state(out / STATE)["history"] if start > 0 else empty_history()
    recorder = Recorder(settings, out, start, {**empty_history(), **history})
    run_server(grid, settings, recorder.on_round, recorder.on_result)
