"""Every registry (MLflow) call the API makes goes through `RegistryClient`: on a few threads of its own, so
that a hung MLflow can never occupy the default pool that /align's image work runs on; with a deadline, so
that callers get a 503 in seconds instead of MLflow's minutes of retries; and with a record of whether the
registry last answered, which /readyz reports."""
import asyncio
import functools
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .errors import InputError, Problem

log = logging.getLogger("sdhrnet.service.registry")

# MLflow's error codes that are its answer about the request (the registry is up), and the API's status for each;
# every other code (INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE, a refused connection or a timeout, which MLflow also
# reports as INTERNAL_ERROR, its own credentials refused, rate limits) is an outage
REQUEST_ERRORS = {"RESOURCE_DOES_NOT_EXIST": 404, "NOT_FOUND": 404, "INVALID_PARAMETER_VALUE": 422,
                  "BAD_REQUEST": 422, "RESOURCE_ALREADY_EXISTS": 409, "ALREADY_EXISTS": 409,
                  "RESOURCE_CONFLICT": 409, "ABORTED": 409}


class RegistryClient:
    def __init__(self, backend, *, threads: int, timeout_s: float):
        self.backend = backend
        self.timeout_s = timeout_s
        self._executor: ThreadPoolExecutor | None = None  # made on first use: an app may start and stop repeatedly
        self._slots = threads
        self._busy = 0
        self.unreachable_since: float | None = None

    async def call(self, method: str, *args, **kwargs):
        """`backend.method(*args, **kwargs)`, or a 503 Problem when the registry is down, slow or saturated.
        A call that overruns keeps its thread until MLflow's own (short) timeout ends it; meanwhile the
        thread counts as busy, so a hung registry cannot pile up work."""
        if self._busy >= self._slots:
            self._mark(False)
            raise self._outage(method, "all registry threads are waiting on it")
        self._busy += 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._slots, thread_name_prefix="registry")
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(getattr(self.backend, method), *args, **kwargs))
        future.add_done_callback(self._release)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except (LookupError, Problem):
            self._mark(True)
            raise
        except ValueError as exc:  # the registry's answer that the request cannot be done (RegistryError, PolicyError)
            self._mark(True)
            raise InputError(str(exc)) from None
        except TimeoutError:
            self._mark(False)
            raise self._outage(method, f"it did not answer within {self.timeout_s:g} s") from None
        except Exception as exc:
            status = _request_error(exc)
            if status is not None:
                self._mark(True)
                detail = f"the model registry refused the request: {_mlflow_message(exc)}"
                # not found is a LookupError, as the backends raise it: routes answer 404, the champion lookup "none"
                raise (LookupError(detail) if status == 404 else Problem(status, detail)) from None
            self._mark(False)
            log.debug("registry %s failed", method, exc_info=True)
            raise self._outage(method, "it failed; the server log says why", cause=exc) from None
        self._mark(True)
        return result

    def _release(self, _future) -> None:
        self._busy -= 1

    def _mark(self, answered: bool) -> None:
        if answered:
            self.unreachable_since = None
        elif self.unreachable_since is None:
            self.unreachable_since = time.time()

    @staticmethod
    def _outage(method: str, why: str, cause: Exception | None = None) -> Problem:
        log.warning("registry %s: %s%s", method, why, f" ({type(cause).__name__}: {cause})" if cause else "")
        return Problem(503, f"the model registry is unreachable ({why}); models already loaded keep serving. "
                            "Check MLFLOW_TRACKING_URI / the mlflow server and retry", headers={"Retry-After": "10"})

    def health(self) -> dict:
        if self.unreachable_since is None:
            return {"registry": "reachable"}
        return {"registry": "unreachable", "registry_unreachable_for_s": round(time.time() - self.unreachable_since, 1)}

    def close(self) -> None:
        # queued calls are dropped; a running one ends at MLflow's request timeout (threads cannot be killed)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _request_error(exc: Exception) -> int | None:
    """The API's status for an MLflow error that answers the request, else None (an outage). By its error code:
    MLflow raises one exception class for both."""
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")  # not loaded: the error cannot be MLflow's
    if mlflow_exceptions is None or not isinstance(exc, mlflow_exceptions.MlflowException):
        return None
    misconfigured = getattr(sys.modules.get("mlflow.tracking.registry"), "UnsupportedModelRegistryStoreURIException",
                            ())
    if isinstance(exc, misconfigured):  # INVALID_PARAMETER_VALUE too, but about the server's tracking URI
        return None
    return REQUEST_ERRORS.get(exc.error_code)


def _mlflow_message(exc) -> str:
    # RestException prefixes its message with the error code, a name that means nothing to API clients
    message = str(getattr(exc, "message", exc))
    return message.removeprefix(f"{exc.error_code}: ")
