"""The lifecycle of model versions: polling, loading, retries, swaps, labels and status.

This is TF Serving's ServerCore + AspiredVersionsManager + ServableStateMonitor in one place:

- Each model's base path is polled; the version policy (latest{N}, all, specific) picks the
  aspired versions (see `serving.versions`).
- Aspired versions load on loader threads; a failed load is retried `max_num_load_retries`
  times, `load_retry_interval_micros` apart, then the version ends in END with its error.
- Swaps preserve availability (AvailabilityPreservingPolicy): a version that is no longer
  aspired is unloaded only once an aspired version is AVAILABLE, or when nothing aspired
  remains. A version that fails to load therefore never replaces a good one.
- Unloading first stops routing new requests to the version, then waits for its in-flight
  requests before freeing it, so a swap under load fails no request.
- Version labels map names to versions; assigning a label to a version that is not AVAILABLE
  fails with FAILED_PRECONDITION, as in TF Serving (unless
  --allow_version_labels_for_unavailable_models).
- Every version's state (START, LOADING, AVAILABLE, UNLOADING, END) and last error are kept for
  GetModelStatus, highest version first, including versions that ended.
"""
from __future__ import annotations

import enum
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import config as config_lib
from serving import errors, versions
from serving.batching import BatchScheduler
from serving.metrics import Metrics
from serving.servable import LoadOptions, Servable

log = logging.getLogger("serving.manager")


class State(enum.IntEnum):
    """ModelVersionStatus.State numbering."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass
class ManagerOptions:
    file_system_poll_wait_seconds: int = 1
    max_num_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    num_load_threads: int = 1
    num_unload_threads: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    load_options: LoadOptions = field(default_factory=LoadOptions)
    # Niceness added to a loader thread while it loads a version of a model that already serves
    # one (a swap), and to an unloading thread, and Python's GIL switch interval meanwhile; see
    # _background_load.
    swap_load_nice: int = 10
    swap_load_switch_interval_s: float = 0.0005


@dataclass
class _Harness:
    """One version being loaded, serving or unloading (LoaderHarness)."""

    version: int
    path: str
    state: State = State.START
    aspired: bool = True
    servable: Servable | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Model:
    config: Any  # ModelConfig
    harnesses: dict[int, _Harness] = field(default_factory=dict)
    available: dict[int, Servable] = field(default_factory=dict)
    latest: int | None = None
    on_disk: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    removed: bool = False
    polled: bool = False
    warned_empty: bool = False
    warned_missing: bool = False
    incomplete_logged: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.config.name


def servable_id(name: str, version: int) -> str:
    return f"{{name: {name} version: {version}}}"


class ModelManager:
    """Owns all models and versions; every public method is thread-safe."""

    def __init__(self, options: ManagerOptions, metrics: Metrics | None = None,
                 batcher: BatchScheduler | None = None):
        self.options = options
        self._metrics = metrics
        self._batcher = batcher
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._models: dict[str, _Model] = {}
        self._monitor: dict[str, dict[int, tuple[State, errors.ServingError | None]]] = {}
        self._config = model_server_config_pb2.ModelServerConfig()
        self._loader = ThreadPoolExecutor(max(1, options.num_load_threads), "load")
        self._unloader = ThreadPoolExecutor(max(1, options.num_unload_threads), "unload")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._config_mutex = threading.Lock()

    # -- config ------------------------------------------------------------------------

    @property
    def config(self) -> Any:
        with self._lock:
            copy = model_server_config_pb2.ModelServerConfig()
            copy.CopyFrom(self._config)
            return copy

    def apply_config(self, new_config: Any) -> None:
        """ServerCore::ReloadConfig: validates, (re)configures models, waits for new ones.

        Raises ServingError; on error the previous config stays in force.
        """
        with self._config_mutex:
            config_lib.validate_model_server_config(new_config)
            if new_config.WhichOneof("config") is None:
                log.info("Taking no action for empty config.")
                return
            with self._lock:
                labels = self._validate_labels(new_config)
                wanted = {m.name: m for m in new_config.model_config_list.config}
                for name in list(self._models):
                    if name not in wanted:
                        self._remove_model(self._models.pop(name))
                new_models: list[_Model] = []
                touched: list[_Model] = []
                for name, model_config in wanted.items():
                    model = self._models.get(name)
                    copy = model_server_config_pb2.ModelConfig()
                    copy.CopyFrom(model_config)
                    if model is None:
                        log.info(" (Re-)adding model: %s", name)
                        model = self._models[name] = _Model(config=copy)
                        self._monitor.setdefault(name, {})
                        new_models.append(model)
                        touched.append(model)
                    elif (model.config.base_path != copy.base_path
                          or model.config.model_version_policy != copy.model_version_policy):
                        model.config = copy
                        touched.append(model)
                    else:
                        model.config = copy
                    model.labels = labels.get(name, {})
                self._config.CopyFrom(new_config)
            for model in touched:
                self._poll_model(model)
            self._wait_for_models(new_models)
            log.info("Finished reloading config")

    def _validate_labels(self, new_config: Any) -> dict[str, dict[str, int]]:
        labels: dict[str, dict[str, int]] = {}
        for model_config in new_config.model_config_list.config:
            name = model_config.name
            current = self._models[name].labels if name in self._models else {}
            states = self._monitor.get(name, {})
            for label, version in model_config.version_labels.items():
                allow = False
                if self.options.allow_version_labels_for_unavailable_models:
                    allow = current.get(label, version) == version
                state = states.get(version)
                if not allow and (state is None or state[0] != State.AVAILABLE):
                    raise errors.failed_precondition(
                        f"Request to assign label to version {version} of model {name}, which "
                        "is not currently available for inference"
                    )
                labels.setdefault(name, {})[label] = version
        return labels

    def _remove_model(self, model: _Model) -> None:
        log.info("Removing model %s from the config; unloading its versions", model.name)
        model.removed = True
        model.labels = {}
        for harness in list(model.harnesses.values()):
            harness.aspired = False
            harness.cancel.set()
            if harness.state == State.AVAILABLE:
                self._start_unload(model, harness)

    def _wait_for_models(self, models: list[_Model]) -> None:
        """Blocks until the new models' first versions have loaded or failed."""
        if not models:
            return
        with self._changed:
            while any(h.state in (State.START, State.LOADING)
                      for m in models for h in m.harnesses.values() if h.aspired):
                self._changed.wait(0.5)
            failures = []
            for model in models:
                if model.available or not model.failed:
                    continue
                for version in sorted(model.failed, reverse=True):
                    _, error = self._monitor[model.name].get(version, (State.END, None))
                    detail = f" due to error: {error}" if error is not None else ""
                    failures.append(f"{{{servable_id(model.name, version)}{detail}}}, ")
            if failures:
                raise errors.unknown(
                    f"{len(failures)} servable(s) did not become available: "
                    f"{{{''.join(failures)}}}"
                )

    # -- polling -----------------------------------------------------------------------

    def start_polling(self) -> None:
        interval = self.options.file_system_poll_wait_seconds
        if interval <= 0 or self._poller is not None:
            return
        self._poller = threading.Thread(target=self._poll_loop, args=(interval,),
                                        name="file_system_poll", daemon=True)
        self._poller.start()

    def _poll_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.poll_all()

    def poll_all(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            try:
                self._poll_model(model)
            except Exception:  # a bad poll must not kill the poller
                log.exception("Polling base path of model %s failed", model.name)

    def _poll_model(self, model: _Model) -> None:
        scan = versions.scan_base_path(model.config.base_path)
        with self._lock:
            if model.removed:
                return
            if not scan.base_path_exists:
                if not model.warned_missing:
                    log.error("Could not find base path %s for servable %s",
                              model.config.base_path, model.name)
                    model.warned_missing = True
                return
            model.warned_missing = False
            for number, path in scan.incomplete.items():
                if number not in model.incomplete_logged:
                    log.info("Version directory %s has no saved_model.pb yet; waiting for the "
                             "copy to complete", path)
                    model.incomplete_logged.add(number)
            model.on_disk = scan.versions
            for number in list(model.failed):
                if number not in scan.versions:
                    del model.failed[number]
            if not scan.versions and not model.warned_empty:
                log.warning("No versions of servable %s found under base path %s. Did you "
                            "forget to name your leaf directory as a number (eg. '/1/')?",
                            model.name, model.config.base_path)
                model.warned_empty = True
            elif scan.versions:
                model.warned_empty = False
            model.polled = True
            self._reconcile(model)

    # -- state machine (called with the lock held) -------------------------------------

    def _reconcile(self, model: _Model) -> None:
        if model.removed:
            return
        aspired = versions.aspired_versions(model.on_disk, model.config.model_version_policy)
        for number in sorted(aspired, reverse=True):
            if number in model.harnesses or number in model.failed:
                continue
            harness = _Harness(number, model.on_disk[number])
            model.harnesses[number] = harness
            self._set_state(model.name, number, State.START)
            self._loader.submit(self._load, model, harness)
        for number, harness in model.harnesses.items():
            harness.aspired = number in aspired
            if not harness.aspired and harness.state in (State.START, State.LOADING):
                harness.cancel.set()
        while True:
            unaspired = sorted(n for n, h in model.harnesses.items()
                               if not h.aspired and h.state == State.AVAILABLE)
            if not unaspired:
                break
            has_aspired = any(h.aspired for h in model.harnesses.values()) or any(
                n in aspired for n in model.failed)
            aspired_serving = any(h.aspired and h.state == State.AVAILABLE
                                  for h in model.harnesses.values())
            if has_aspired and not aspired_serving and len(unaspired) <= 1:
                break  # keep the old version until a new one is AVAILABLE
            self._start_unload(model, model.harnesses[unaspired[0]])

    def _set_state(self, name: str, version: int, state: State,
                   error: errors.ServingError | None = None) -> None:
        self._monitor.setdefault(name, {})[version] = (state, error)
        self._changed.notify_all()

    def _publish(self, model: _Model) -> None:
        model.latest = max(model.available) if model.available else None

    def _start_unload(self, model: _Model, harness: _Harness) -> None:
        harness.state = State.UNLOADING
        self._set_state(model.name, harness.version, State.UNLOADING)
        servable = model.available.pop(harness.version, None)
        self._publish(model)
        log.info("Unloading servable version %s", servable_id(model.name, harness.version))
        self._unloader.submit(self._unload, model, harness, servable)

    def _unload(self, model: _Model, harness: _Harness, servable: Servable | None) -> None:
        try:
            if servable is not None:
                # Freeing a version (its session, its graph's Python objects) competes with the
                # requests like loading one does.
                with _background_load(self.options.swap_load_nice,
                                      self.options.swap_load_switch_interval_s):
                    servable.close()
        except Exception:
            log.exception("Error while unloading %s", servable_id(model.name, harness.version))
        with self._lock:
            harness.state = State.END
            harness.servable = None
            if model.harnesses.get(harness.version) is harness:
                del model.harnesses[harness.version]
            self._set_state(model.name, harness.version, State.END)
            log.info("Done unloading servable version %s",
                     servable_id(model.name, harness.version))
            self._reconcile(model)

    def _load(self, model: _Model, harness: _Harness) -> None:
        attempts = max(0, self.options.max_num_load_retries) + 1
        servable: Servable | None = None
        error: errors.ServingError | None = None
        for attempt in range(attempts):
            with self._lock:
                if harness.cancel.is_set():
                    break
                harness.state = State.LOADING
                self._set_state(model.name, harness.version, State.LOADING)
            log.info("Loading servable version %s from %s",
                     servable_id(model.name, harness.version), harness.path)
            try:
                with self._lock:
                    swap = bool(model.available)
                with (_background_load(self.options.swap_load_nice,
                                       self.options.swap_load_switch_interval_s)
                      if swap else nullcontext()):
                    servable = Servable.load(model.name, harness.version, harness.path,
                                             self.options.load_options)
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                error = errors.from_exception(exc)
                log.error("Loading servable: %s failed: %s",
                          servable_id(model.name, harness.version), error)
            if attempt + 1 < attempts:
                log.info("Retrying load of %s in %.3g s (%d of %d retries)",
                         servable_id(model.name, harness.version),
                         self.options.load_retry_interval_s, attempt + 1, attempts - 1)
                if harness.cancel.wait(self.options.load_retry_interval_s):
                    break
        with self._lock:
            if servable is not None and not model.removed:
                if self._batcher is not None:
                    servable.runner = _batching_runner(self._batcher, servable)
                harness.servable = servable
                harness.state = State.AVAILABLE
                model.available[harness.version] = servable
                self._publish(model)
                self._set_state(model.name, harness.version, State.AVAILABLE)
                log.info("Successfully loaded servable version %s",
                         servable_id(model.name, harness.version))
                self._record_load(model.name, "OK")
            else:
                if servable is not None:  # the model went away while loading
                    self._unloader.submit(servable.close)
                if error is None:
                    error = errors.ServingError(grpc.StatusCode.CANCELLED,
                                                "Load cancelled: version no longer aspired")
                else:
                    self._record_load(model.name, error.code.name)
                    if harness.version in model.on_disk and not harness.cancel.is_set():
                        model.failed[harness.version] = harness.path
                harness.state = State.END
                if model.harnesses.get(harness.version) is harness:
                    del model.harnesses[harness.version]
                self._set_state(model.name, harness.version, State.END, error)
            self._reconcile(model)

    def _record_load(self, name: str, status: str) -> None:
        if self._metrics is not None:
            self._metrics.record_load(name, status)

    # -- requests ------------------------------------------------------------------------

    @contextmanager
    def servable(self, model_spec: Any) -> Iterator[Servable]:
        """Resolves a ModelSpec to a loaded version and holds it for the request's duration."""
        servable = self._acquire(model_spec)
        try:
            yield servable
        finally:
            servable.release()

    def _acquire(self, model_spec: Any) -> Servable:
        name = model_spec.name
        if not name:
            raise errors.invalid_argument("ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        with self._lock:
            model = self._models.get(name)
            if choice == "version_label":
                version = self._label_version(model, model_spec.version_label)
                choice, wanted = "version", version
            elif choice == "version":
                wanted = model_spec.version.value
            if choice == "version":
                servable = model.available.get(wanted) if model is not None else None
                if servable is None:
                    raise errors.not_found(
                        f"Servable not found for request: Specific({name}, {wanted})"
                    )
            else:
                if model is None or model.latest is None:
                    raise errors.not_found(f"Servable not found for request: Latest({name})")
                servable = model.available[model.latest]
            servable.acquire()
            return servable

    @staticmethod
    def _label_version(model: _Model | None, label: str) -> int:
        version = model.labels.get(label) if model is not None else None
        if version is None:
            raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
        return version

    def model_status(self, model_spec: Any) -> Any:
        """GetModelStatusImpl: one version, or every version known for the model."""
        name = model_spec.name
        response = get_model_status_pb2.GetModelStatusResponse()
        with self._lock:
            states = self._monitor.get(name, {})
            choice = model_spec.WhichOneof("version_choice")
            if choice == "version_label":
                choice = "version"
                version = self._label_version(self._models.get(name), model_spec.version_label)
            elif choice == "version":
                version = model_spec.version.value
            if choice == "version":
                if version not in states:
                    raise errors.not_found(f"Could not find version {version} of model {name}")
                selected = [(version, states[version])]
            else:
                if not states:
                    raise errors.not_found(f"Could not find any versions of model {name}")
                selected = sorted(states.items(), reverse=True)
            for number, (state, error) in selected:
                entry = response.model_version_status.add()
                entry.version = number
                entry.state = int(state)
                entry.status.SetInParent()  # TF Serving always reports a status, OK included
                if error is not None:
                    entry.status.error_code = error.code_number
                    entry.status.error_message = error.message
        return response

    # -- introspection and shutdown --------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))
            return True

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for model in self._models.values():
                for harness in model.harnesses.values():
                    harness.cancel.set()
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._unloader.shutdown(wait=False, cancel_futures=True)


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextmanager
def _background_load(nice: int, switch_interval_s: float) -> Iterator[None]:
    """Loads a new version beside the serving one without starving its requests.

    A load is mostly Python (importing the graph, building its operations) and C++ run from
    the loader thread; on a small machine it competes with the request threads for the CPU and
    for Python's interpreter lock. Two things keep requests first: the loader thread's nice
    value goes up by `nice` (Linux schedules threads by their own nice value; threads started
    meanwhile inherit it), and Python's switch interval drops to `switch_interval_s` while any
    swap loads, so a request thread waiting for the lock gets it after at most that long
    instead of 5 ms. Both are undone afterwards (lowering the nice value again needs
    CAP_SYS_NICE; without it the loader thread stays nicer, which only slows later loads).
    nice 0 and interval 0 turn either off.
    """
    global _switch_users, _switch_saved
    tid = threading.get_native_id()
    before = None
    if nice > 0 and hasattr(os, "setpriority"):
        try:
            before = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, before + nice))
        except OSError as exc:
            log.warning("Could not lower the loader thread's priority: %s", exc)
            before = None
    if switch_interval_s > 0:
        with _switch_lock:
            if _switch_users == 0:
                _switch_saved = sys.getswitchinterval()
                sys.setswitchinterval(min(switch_interval_s, _switch_saved))
            _switch_users += 1
    try:
        yield
    finally:
        if switch_interval_s > 0:
            with _switch_lock:
                _switch_users -= 1
                if _switch_users == 0:
                    sys.setswitchinterval(_switch_saved)
        if before is not None:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, before)
            except OSError:
                pass  # no CAP_SYS_NICE: this loader thread stays at the lower priority


def _batching_runner(batcher: BatchScheduler, servable: Servable):
    def run(feeds: tuple, fetches: tuple, arrays: list) -> list:
        return batcher.run(
            (id(servable), feeds, fetches),
            lambda batch: servable.run_direct(feeds, fetches, batch),
            arrays,
        )

    return run
