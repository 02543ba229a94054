"""The federation through `flwr run`: on Flower's deployment runtime (`speechmask federate
--deployment CONN`) or in its simulation runtime (the default).

The app folder (`<out>/app/pyproject.toml`, written here) names the components in
`deploy_apps.py`; `flwr run <out>/app CONN --run-config <out>/app/run.toml` submits it to the
SuperLink of the flwr connection CONN (in `$FLWR_HOME/config.toml`), then `flwr log` follows it
until it ends and `flwr ls` gives its status. The server writes `state.pt` into `<out>` on the
SuperLink's machine. Nothing is installed at run time: the SuperLink must run with
`--disable-runtime-dependency-installation` (else it runs `uv sync` for every run), and every
machine needs speechmask installed, as the README's walk-through sets up.

`--deployment local[:PORT]` starts the runtime here for the run: a SuperLink on 127.0.0.1 (PORT,
or a free one) and one SuperNode per client, each process in a process group of its own, with a
private FLWR_HOME (no `:local:` connection, so `flwr` never starts its detached simulation
SuperLink) and stops them all afterwards, whatever happens: each by its PID, then every process
they started (Flower's SuperExec and apps, Ray), found from their PIDs (psutil) and waited for.
SIGTERM and SIGHUP stop the run as Ctrl-C does. If speechmask is killed outright (SIGKILL), the
kernel sends the SuperLink and `flwr log` SIGTERM (PR_SET_PDEATHSIG), and Flower's processes
follow; the simulation finishes the round it is in first, and two of Ray's agents can outlive it
(Ray's own behaviour when its driver is killed).

Without `--deployment` the federation runs in Flower's simulation runtime the same way
(`run_on_flower` with no deployment): a SuperLink with `--simulation` on a free port, started
and stopped here, and `flwr run` with the simulation's settings (`--federation-config`: the
number of SuperNodes, one CPU each); Flower's simulation engine (Ray) runs the same ClientApp
and ServerApp as the deployment. Neither runtime has a time limit unless given: Ctrl-C stops the
run (`flwr stop`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from speechmask.errors import SpeechmaskError

APP_NAME = "speechmask-fl"  # Flower wants letters, digits and hyphens
APP_TOML = """# The Flower app `flwr run` ships to the SuperLink (written by speechmask federate)
[project]
name = "{app_name}"
version = "1.0.0"
description = "speechmask: federated adaptation on masked features"
license = "Apache-2.0"

[tool.flwr.app]
publisher = "speechmask"

[tool.flwr.app.components]
serverapp = "speechmask.federated.deploy_apps:{prefix}serverapp"
clientapp = "speechmask.federated.deploy_apps:{prefix}clientapp"

[tool.flwr.app.config]
settings = "{{}}"
"""
BIN = Path(sys.executable).parent  # flwr, flower-superlink, flower-supernode, flwr-*app


class DeploymentError(SpeechmaskError):
    """Flower's runtime (deployment or simulation) refused or failed the run: one line naming
    what and where."""


def write_app(out: Path, settings: dict) -> tuple[Path, Path]:
    """(app folder, run config file) for a run whose server writes into `out`."""
    app = out / "app"
    app.mkdir(parents=True, exist_ok=True)
    prefix = "secure_" if settings.get("secure_aggregation") else ""
    (app / "pyproject.toml").write_text(APP_TOML.format(app_name=APP_NAME, prefix=prefix))
    run = app / "run.toml"  # a JSON string is a valid TOML basic string
    run.write_text("settings = " + json.dumps(json.dumps({**settings, "out": str(out)})) + "\n")
    return app, run


def flwr_env(home: Path | None) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the runtime starts helpers by name
    env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
               FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", PYTHONUNBUFFERED="1")
    if home is not None:
        env["FLWR_HOME"] = str(home)
    return env


def flwr(env: dict, *args: str, timeout: float = 120) -> dict:
    """A `flwr` command with --format json; its JSON, or DeploymentError (in JSON mode flwr
    exits 0 on failure: the `success` field says)."""
    cmd = [str(BIN / "flwr"), *args, "--format", "json"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_term_with_parent)
    except subprocess.TimeoutExpired:
        raise DeploymentError(f"flwr {' '.join(args[:2])}: no answer in {timeout:.0f} s") from None
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        data = {"success": False, "error-message": (done.stderr or done.stdout).strip()[-300:]}
    if data.get("success") is False or "error-message" in data:
        message = " ".join(str(data.get("error-message") or data).split())  # one line
        raise DeploymentError(f"flwr {' '.join(args[:2])}: {message}")
    return data


def submit_and_wait(env: dict, app: Path, run_toml: Path, connection: str,
                    timeout: float | None, log_path: Path,
                    federation_config: str | None = None) -> dict:
    """Submits the app and follows the ServerApp's log (`flwr log`, which streams until the run
    ends) into `log_path`; the run's `flwr ls` entry. A run that does not finish in `timeout` s
    (None: no limit) is stopped. `federation_config`: the simulation's settings (`flwr run
    --federation-config`)."""
    extra = ["--federation-config", federation_config] if federation_config else []
    run_id = str(flwr(env, "run", str(app), connection, "--run-config", str(run_toml), *extra)
                 ["run-id"])
    finished = False
    try:
        with open(log_path, "wb") as log:
            try:
                subprocess.run([str(BIN / "flwr"), "log", run_id, connection], env=env,
                               stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                               preexec_fn=_term_with_parent)  # its stream holds the SuperLink
            except subprocess.TimeoutExpired:
                raise DeploymentError(f"run {run_id} on {connection}: not finished after "
                                      f"{timeout:.0f} s; stopped (log: {log_path})") from None
        for _ in range(30):  # the stream ends with the run; its status follows at once
            run = flwr(env, "ls", connection, "--run-id", run_id)["runs"][0]
            finished = run["status"].startswith("finished")
            if finished:
                break
            time.sleep(1.0)
    finally:
        if not finished:  # a broken stream, a timeout, Ctrl-C: the run must not go on alone
            try:
                flwr(env, "stop", run_id, connection, timeout=30)
            except DeploymentError:
                pass
    if run["status"] != "finished:completed":
        raise DeploymentError(f"run {run_id} on {connection}: {run['status']} "
                              f"{run.get('status-details', '')}; log: {log_path}")
    return run


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the SuperLink's server binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_free(port: int) -> None:
    if not port_free(port):
        raise DeploymentError(f"127.0.0.1:{port} is in use: give another port "
                              "(--deployment local:PORT) or none for a free one")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalDeployment:
    """A SuperLink and `nodes` SuperNodes on 127.0.0.1 (insecure: one machine), logs and state
    under `work`; a context manager that stops every process it started. `simulation`: the
    SuperLink runs its runs in Flower's simulation engine, and no SuperNode is started (the
    simulation makes its own)."""

    def __init__(self, work: Path, nodes: int, port: int | None = None,
                 simulation: bool = False):
        self.work, self.nodes, self.simulation = work, nodes, simulation
        if port is not None:
            require_free(port)
        self.port = port or free_port()
        self.home = work / "flwr_home"
        self.procs: list[subprocess.Popen] = []
        self.env = flwr_env(self.home)
        if not simulation:  # every SuperNode trains at once here: one thread each, not one per
            self.env.setdefault("OMP_NUM_THREADS", "1")  # core each (Ray sees to it in simulation)

    def __enter__(self) -> "LocalDeployment":
        self._handlers = _exit_on_termination()
        for sub in ("flwr_home", "logs", "state", "tmp"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        for old in (self.work / "state").glob("superlink.db*"):  # no nodes of an earlier run
            old.unlink()
        # Ray's sockets live in its temp folder, and a socket path over 107 bytes fails: Ray
        # keeps the machine's short one, every other helper the run's own
        self.env.setdefault("RAY_TMPDIR", tempfile.gettempdir())
        self.env["TMPDIR"] = str(self.work / "tmp")
        (self.home / "config.toml").write_text(  # a named connection; no ":local:" fallback
            '[superlink]\ndefault = "speechmask"\n\n[superlink.speechmask]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')
        try:
            self._start("superlink", ["flower-superlink", "--insecure", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--database",
                                      str(self.work / "state" / "superlink.db"),
                                      "--disable-runtime-dependency-installation",
                                      *(["--simulation"] if self.simulation else [])])
            self._wait_healthy()
            if self.simulation:
                return self
            for k in range(self.nodes):
                node_port = free_port()
                self._start(f"supernode{k}", [
                    "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                    "--host", "127.0.0.1", "--port", str(node_port), "--max-retries", "30",
                    "--node-config", f"partition-id={k} num-partitions={self.nodes}"])
            self._wait_online()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            for signum, handler in self._handlers.items():
                signal.signal(signum, handler)

    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.work / "logs" / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen([str(BIN / cmd[0]), *cmd[1:]], env=self.env,
                                           cwd=self.work, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True,
                                           preexec_fn=_term_with_parent))
        log.close()

    def _wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[0].poll() is not None:
                raise DeploymentError(f"flower-superlink exited ({self.procs[0].returncode}); "
                                      f"see {self.work / 'logs' / 'superlink.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise DeploymentError(f"flower-superlink on 127.0.0.1:{self.port}: not up after "
                              f"{timeout:.0f} s")

    def _wait_online(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [k for k, p in enumerate(self.procs[1:]) if p.poll() is not None]
            if dead:
                raise DeploymentError(f"flower-supernode {dead[0]} exited; see "
                                      f"{self.work / 'logs' / f'supernode{dead[0]}.log'}")
            nodes = flwr(self.env, "supernode", "ls", "speechmask")["nodes"]
            if sum(n["status"] == "online" for n in nodes) >= self.nodes:
                return
            time.sleep(0.5)
        raise DeploymentError(f"{self.nodes} SuperNodes not online after {timeout:.0f} s; see "
                              f"{self.work / 'logs'}")

    def stop(self) -> None:
        """The SuperNodes first, waited for (their SuperExec and ClientApps share their process
        group; the SuperLink is still there to take their goodbyes), then the SuperLink; then
        whatever they started that outlives them (the SuperLink's SuperExec runs in a session
        of its own, and the simulation's ServerApp and Ray leave when Flower's parent-PID checks
        notice), found before the first signal and waited for, killed after 20 s. Then the
        same for any process still carrying this run's FLWR_HOME in its environment: one that
        started after that snapshot, or left the process tree."""
        import psutil

        started = []
        for p in self.procs:
            try:
                started += psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        nodes, link = self.procs[1:], self.procs[:1]
        for group in (nodes, link):
            for p in group:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
            for p in group:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        _end(started)
        for _ in range(3):  # until a look finds none
            left = self._carrying_this_run()
            if not left:
                break
            _end(left, terminate=True)
        self.procs = []

    def _carrying_this_run(self) -> list:
        """The processes whose environment names this run's FLWR_HOME (every process the run
        started inherits it), this one excepted."""
        import psutil

        home, found = str(self.home), []
        for p in psutil.process_iter():
            try:
                if p.pid != os.getpid() and p.environ().get("FLWR_HOME") == home:
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return found


def _end(procs: list, terminate: bool = False) -> None:
    """Wait up to 20 s for `procs` (psutil processes) to exit, SIGTERM first if `terminate`
    (those whose parent's exit will not end them), then kill what is left."""
    import psutil

    if terminate:
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
    _, alive = psutil.wait_procs(procs, timeout=20)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _exit_on_termination() -> dict:
    """SIGTERM and SIGHUP (`kill`, a closed terminal, a CI job's timeout) raise SystemExit, as
    Ctrl-C raises KeyboardInterrupt, so that the run is stopped and every process with it;
    returns the handlers replaced (none outside the main thread, where Python allows none)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def leave(signum, frame):
        raise SystemExit(128 + signum)

    return {signum: signal.signal(signum, leave) for signum in (signal.SIGTERM, signal.SIGHUP)}


def _term_with_parent() -> None:
    """In a started process, before it runs: SIGTERM when speechmask dies, however it dies
    (Linux's PR_SET_PDEATHSIG; elsewhere nothing), so that no runtime outlives a killed run."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def check_deployment(deployment: str) -> None:
    """Before any work: a local port that is taken, or a connection flwr does not know, is one
    line."""
    if _is_local(deployment):
        port = deployment.partition(":")[2]
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            raise DeploymentError(f"--deployment {deployment}: the port must be a number "
                                  "from 1 to 65535")
        if port:
            require_free(int(port))
        return
    known = flwr(flwr_env(None), "config", "ls").get("superlink", [])
    if deployment not in known:
        raise DeploymentError(f"--deployment {deployment}: no such flwr connection in "
                              f"{os.environ.get('FLWR_HOME', '~/.flwr')}/config.toml "
                              f"(known: {', '.join(known) or 'none'})")


def _is_local(deployment: str) -> bool:
    return deployment == "local" or deployment.startswith("local:")


def _absolute(settings: dict) -> dict:
    """The server and the clients run in other processes, or elsewhere: absolute paths only."""
    return {**settings, **{k: str(Path(settings[k]).resolve()) for k in
                           ("data_dir", "initial_state", "audit", "lm_dir", "speech_encoder",
                            "dump_dir")
                           if settings.get(k)}}


def simulation_config(clients: int, verbose: bool = False) -> str:
    """`flwr run --federation-config`: one SuperNode per client, each ClientApp on one CPU (Ray
    gives each worker one thread) and Ray on two (the reference machine's cores), Ray's own logs
    only when verbose."""
    return (f"num-supernodes={clients} client-resources-num-cpus=1 "
            f"client-resources-num-gpus=0.0 init-args-num-cpus=2 "
            f"init-args-log-to-driver={'true' if verbose else 'false'} "
            f"verbose={'true' if verbose else 'false'}")


def run_on_flower(settings: dict, out: Path, deployment: str | None = None, *,
                  verbose: bool = False, timeout: float | None = None) -> None:
    """Runs the federation described by `settings` (runner.run_federation's) with `flwr run`:
    `deployment` None, in the simulation runtime (a simulation SuperLink started and stopped
    here); "local[:PORT]", on a deployment runtime started and stopped here; otherwise on the
    flwr connection of that name."""
    out = out.resolve()
    app, run_toml = write_app(out, _absolute(settings))
    if deployment is not None:
        check_deployment(deployment)
    if deployment is None or _is_local(deployment):
        simulation = deployment is None
        port = "" if simulation else deployment.partition(":")[2]
        work = out / ("simulation" if simulation else "deploy")
        log = work / "logs" / "serverapp.log"
        with LocalDeployment(work, settings["clients"], int(port) if port else None,
                             simulation=simulation) as local:
            submit_and_wait(local.env, app, run_toml, "speechmask", timeout, log,
                            simulation_config(settings["clients"], verbose) if simulation
                            else None)
    else:
        log = out / "app" / "run.log"
        submit_and_wait(flwr_env(None), app, run_toml, deployment, timeout, log)
    if verbose:  # the ServerApp's own log, Flower's rounds included
        print(log.read_text(errors="replace"))
