"""Measurement tools shared by the benchmark scripts.

Memory (current and peak resident memory, resetting the peak, giving freed
heap back to the OS), the CPU load of other processes, device
synchronisation and timing, the machine's description, Markdown tables, and
running one measurement in a subprocess that prints its result as JSON after
a marker line. Not a script: ``bench_dsaml.py``, ``bench_scale.py``,
``scale_workers.py``, ``bench_features.py`` and ``bench_baselines.py`` import
it after putting this folder on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

MARK = "@@BENCH_RESULT@@ "
"""Starts the stdout line on which a worker process prints its result."""

IDLE_CORES = 0.25
"""Waiting for an idle machine: other processes may use at most this many cores."""


# --------------------------------------------------------------------- memory
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.M)
        return int(match.group(1)) if match else None
    except OSError:
        return None


def _memory_mib(field: str) -> float:
    """A /proc/self/status memory field in MiB; the rusage peak where there is none."""
    kib = _status_kib(field)
    if kib is not None:
        return kib / 1024
    return maxrss_mib()


def rss_mib() -> float:
    """Resident memory of this process now, in MiB."""
    return _memory_mib("VmRSS")


def maxrss_mib() -> float:
    """The peak resident memory ``getrusage`` reports for this process, in MiB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024   # bytes vs KiB


def reset_peak() -> bool:
    """Reset VmHWM (Linux >= 4.0); False where the peak cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """Peak resident memory (VmHWM) since the start or the last :func:`reset_peak`."""
    return _memory_mib("VmHWM")


def release_memory():
    """Give freed heap back to the OS (glibc), so the RSS baseline is honest."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryProbe:
    """Baseline RSS now, and the peak reached from now on."""

    def __init__(self, device):
        import torch

        self.device = device
        release_memory()
        self.baseline = rss_mib()
        self.reset = reset_peak()
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.cuda_baseline = torch.cuda.memory_allocated(device) / 2**20

    def result(self) -> dict:
        import torch

        peak = peak_mib()
        out = {"rss_baseline_mib": self.baseline, "rss_peak_mib": peak,
               "rss_delta_mib": max(peak - self.baseline, 0.0), "peak_reset": self.reset}
        if self.cuda:
            gpu_peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            out.update(gpu_peak_mib=gpu_peak,
                       gpu_delta_mib=max(gpu_peak - self.cuda_baseline, 0.0))
        return out


# ----------------------------------------------------------------------- load
def _cpu_busy_s() -> float | None:
    """CPU seconds all processes of the machine have used (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    ticks = [int(x) for x in fields[1:9]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class LoadProbe:
    """CPU cores other processes kept busy while this one ran."""

    def __init__(self):
        self.wall, self.busy, self.own = time.perf_counter(), _cpu_busy_s(), _own_cpu_s()

    def others(self) -> float | None:
        busy = _cpu_busy_s()
        if busy is None or self.busy is None:
            return None
        wall = time.perf_counter() - self.wall
        return max(busy - self.busy - (_own_cpu_s() - self.own), 0.0) / max(wall, 1e-9)


def other_load(seconds: float = 3.0) -> float | None:
    """Cores used by other processes over the next ``seconds``."""
    probe = LoadProbe()
    time.sleep(seconds)
    return probe.others()


def wait_idle(limit_s: float, log) -> None:
    """Wait up to ``limit_s`` seconds until other processes use < IDLE_CORES cores.

    Probes the load for 3 s, then sleeps up to 27 s before the next probe;
    ``log`` gets a line each time the machine is still busy.
    """
    deadline = time.time() + limit_s
    while True:
        others = other_load(3.0)
        if others is None or others < IDLE_CORES or time.time() >= deadline:
            return
        log(f"[bench]   other processes use {others:.1f} cores; waiting ...")
        time.sleep(min(27.0, max(deadline - time.time(), 0.0)))


# --------------------------------------------------------------------- timing
def sync(device):
    """Wait for the queued work of a CUDA ``device``; nothing on other devices."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device=None):
    """``(wall seconds, result)`` of ``fn()``; a CUDA ``device`` is synchronised first."""
    t0 = time.perf_counter()
    out = fn()
    if device is not None:
        sync(device)
    return time.perf_counter() - t0, out


def repeat_timed(fn, repeats: int, device=None):
    """The wall seconds of each of ``repeats`` calls of ``fn`` (see :func:`timed`)
    and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        seconds, out = timed(fn, device)
        times.append(seconds)
    return times, out


# -------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                    name = line.split(":", 1)[1].strip()
                    if name and not name.isdigit():
                        return name
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "n/a"


def thread_env(threads: int) -> dict:
    """This process's environment with the OpenMP / MKL / OpenBLAS threads set."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


# -------------------------------------------------------------------- workers
def run_worker(workers: dict, cfg: dict) -> None:
    """Run ``workers[cfg["kind"]](cfg)`` on ``cfg["threads"]`` torch threads and print
    its result, with the number of threads torch used, for :func:`spawn_worker`."""
    import torch

    torch.set_num_threads(cfg["threads"])
    result = workers[cfg["kind"]](cfg)
    result["threads"] = torch.get_num_threads()
    print(MARK + json.dumps(result), flush=True)


def spawn_worker(script: str, args: list, env: dict, what: str) -> dict:
    """Run ``python script *args`` and return the result its :func:`run_worker` printed.

    Raises ``RuntimeError`` naming ``what`` with the end of its stderr when
    the process printed no result.
    """
    proc = subprocess.run([sys.executable, script, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


# ----------------------------------------------------------------- formatting
def fmt_s(values) -> str:
    """Median seconds, with the range when there are several."""
    med = statistics.median(values)
    text = fmt_num(med)
    if len(values) > 1:
        text += f" ({fmt_num(min(values))}–{fmt_num(max(values))})"
    return text


def fmt_num(x: float) -> str:
    """A number with three significant digits or so (no exponent)."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_memory(r) -> str:
    """``peak / +increase`` MiB of a :class:`MemoryProbe` result (and the GPU's)."""
    text = f"{r['rss_peak_mib']:.0f} / +{r['rss_delta_mib']:.0f}"
    if "gpu_peak_mib" in r:
        text += f" (GPU {r['gpu_peak_mib']:.0f} / +{r['gpu_delta_mib']:.0f})"
    return text


def fmt_load(r) -> str:
    """The ``other_cores`` of a result (from :meth:`LoadProbe.others`), or n/a."""
    cores = r.get("other_cores")
    return "n/a" if cores is None else f"{cores:.1f}"


def table(header, rows) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
