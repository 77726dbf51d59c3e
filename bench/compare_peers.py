#!/usr/bin/env python3
"""One training step of the two-layer classifier, timed side by side in this library, numpy and
PyTorch, in one run on this machine.

A step is: zero the gradients, forward (X.W1 + b1 -> relu -> .W2 + b2), softmax cross-entropy plus
reg * (|W1|^2 + |W2|^2), backward. numpy has no autograd: its gradients are derived by hand (the
CS231n way). Ours is bench_step's `step/<config>/<dtype>` benchmark.

Every measurement is the median of --repetitions repetitions, each the mean step time over at least
--min-time seconds (Google Benchmark's method, reproduced here for the Python peers), after warm-up;
with --rounds R every config is measured R times, the rounds one after the other, and the median
of the R is reported. A round runs our step in each dtype back to back, then the peers; with
float32 and float64 both asked for, a line gives our float64/float32 ratio as the median of the
rounds' pairs (each pair measured seconds apart, while the two rows' medians may come from
different stretches of the run).
On a shared machine pass --wait-quiet: each measurement then waits for a few idle seconds first.
Each peer runs in a subprocess of its own, so that its thread settings are in place before its
libraries load: numpy gets OPENBLAS_NUM_THREADS=--threads. PyTorch is tried with
torch.set_num_threads(1) and (--threads), each with OPENBLAS_NUM_THREADS (the BLAS under its
matrix products, a separate pool from its OpenMP one) at 1 and at --threads; in each round the
best of each torch setting counts, and the table names the OpenBLAS count of the round nearest
the median. Ours runs with --threads.

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which this environment sets on some processors and which
slow OpenBLAS down, are removed from the environment of every subprocess this script starts (ours
and the peers', which all use OpenBLAS), and only there; the script says whether they were set.
--openblas-coretype NAME sets OPENBLAS_CORETYPE=NAME for all of them alike instead: OpenBLAS 0.3.21
does not know AMD's Zen 4 and runs its Intel Cooperlake kernels there, while its Zen ones (NAME
Zen) are faster on some of these products (docs/performance.md).

  /usr/bin/python3 bench/compare_peers.py --bench build/perf/bench/bench_step --rounds 3
  /usr/bin/python3 bench/compare_peers.py --configs fashion,big --dtypes float32,float64

Needs python3-numpy and python3-torch (Debian) for the peers; a missing one is reported as such.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {  # name: (N, D, H, C) = batch, input features, hidden units, classes
    "toy": (5, 4, 10, 3),
    "cifar": (200, 3072, 100, 10),
    "fashion": (128, 784, 512, 10),
    "big": (1024, 784, 2048, 10),
}
REG = 1e-5
QUIRK_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def median_step_seconds(step, min_time, repetitions):
    """Median over repetitions of the mean time of one step(), each repetition >= min_time."""
    for _ in range(3):
        step()
    iters = 1
    while True:  # as Google Benchmark: grow the iteration count until a repetition is long enough
        start = time.perf_counter()
        for _ in range(iters):
            step()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        iters = max(iters + 1, int(iters * 1.4 * min_time / max(elapsed, 1e-9)))
    means = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        means.append((time.perf_counter() - start) / iters)
    return statistics.median(means)


def problem(np, config, dtype):
    N, D, H, C = CONFIGS[config]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, N)
    W1 = (rng.standard_normal((D, H)) * np.sqrt(2.0 / D)).astype(dtype)
    W2 = (rng.standard_normal((H, C)) * np.sqrt(1.0 / H)).astype(dtype)
    return X, y, W1, np.zeros(H, dtype), W2, np.zeros(C, dtype)


def numpy_step(config, dtype):
    import numpy as np

    X, y, W1, b1, W2, b2 = problem(np, config, dtype)
    N = X.shape[0]
    rows = np.arange(N)

    def step():
        h = X @ W1
        h += b1
        np.maximum(h, 0, out=h)
        s = h @ W2
        s += b2
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        w1, w2 = W1.ravel(), W2.ravel()
        loss = -np.log(p[rows, y]).mean() + REG * (w1 @ w1 + w2 @ w2)
        p[rows, y] -= 1  # dL/ds = (p - onehot) / N
        p /= N
        dW2 = h.T @ p
        dW2 += 2 * REG * W2
        db2 = p.sum(axis=0)
        dh = p @ W2.T
        dh[h <= 0] = 0
        dW1 = X.T @ dh
        dW1 += 2 * REG * W1
        db1 = dh.sum(axis=0)
        return loss, dW1, db1, dW2, db2

    return step


def torch_step(config, dtype, threads):
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    arrays = problem(np, config, dtype)
    X, y = torch.from_numpy(arrays[0]), torch.from_numpy(arrays[1])
    W1, b1, W2, b2 = (torch.from_numpy(a).requires_grad_() for a in arrays[2:])
    params = (W1, b1, W2, b2)

    def step():
        for p in params:  # as our zero_grad: keep the storage
            if p.grad is not None:
                p.grad.zero_()
        scores = torch.addmm(b2, torch.relu(torch.addmm(b1, X, W1)), W2)
        loss = F.cross_entropy(scores, y) + REG * (W1.pow(2).sum() + W2.pow(2).sum())
        loss.backward()
        return loss

    return step


def worker(args):
    """Runs inside a subprocess: times one peer and prints {"seconds": ...} or {"error": ...}."""
    try:
        if args.peer == "numpy":
            step = numpy_step(args.config, args.dtype)
        else:
            step = torch_step(args.config, args.dtype, args.threads)
    except ImportError as e:
        print(json.dumps({"error": f"not installed ({e.name})"}))
        return
    print(json.dumps({"seconds": median_step_seconds(step, args.min_time, args.repetitions)}))


def clean_env(threads, blas_threads=None, coretype=None):
    env = {k: v for k, v in os.environ.items() if k not in QUIRK_VARS}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    env["OPENBLAS_NUM_THREADS"] = str(blas_threads or threads)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def wait_quiet(max_seconds):
    """Waits up to max_seconds for 3 s in a row with the CPUs >= 95% idle (Linux): other people's
    compilers on a shared 2-core machine skew any timing taken while they run."""
    def snapshot():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)

    deadline, quiet = time.time() + max_seconds, 0
    while quiet < 3 and time.time() < deadline:
        idle0, total0 = snapshot()
        time.sleep(1)
        idle1, total1 = snapshot()
        quiet = quiet + 1 if (idle1 - idle0) >= 0.95 * max(1, total1 - total0) else 0


def run_peer(peer, config, dtype, threads, args, blas_threads=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", peer, "--config", config,
           "--dtype", dtype, "--threads", str(threads), "--min-time", str(args.min_time),
           "--repetitions", str(args.repetitions)]
    wait_quiet(args.wait_quiet)
    out = subprocess.run(cmd, env=clean_env(threads, blas_threads, args.openblas_coretype),
                         capture_output=True, text=True)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return None, f"failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}"
    return result.get("seconds"), result.get("error")


def run_ours(config, dtype, args):
    cmd = [args.bench, f"--threads={args.threads}", f"--benchmark_filter=^step/{config}/{dtype}(/|$)",
           f"--benchmark_min_time={args.min_time}", f"--benchmark_repetitions={args.repetitions}",
           "--benchmark_report_aggregates_only=true", "--benchmark_format=json"]
    wait_quiet(args.wait_quiet)
    out = subprocess.run(cmd, env=clean_env(args.threads, None, args.openblas_coretype),
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{args.bench} failed:\n{out.stderr}")
    for b in json.loads(out.stdout)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
            return b["real_time"] * scale
    sys.exit(f"no median in the output of {' '.join(cmd)}")


def run_torch(config, dtype, threads, args):
    """Best over OpenBLAS thread counts of torch with set_num_threads(threads): (s, blas, err)."""
    best, err = (None, None), None
    for blas in sorted({1, args.threads}):
        seconds, err = run_peer("torch", config, dtype, threads, args, blas)
        if seconds and (best[0] is None or seconds < best[0]):
            best = (seconds, blas)
    return best[0], best[1], err


def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.3f} ms"


def report(config, dtype, rounds, threads):
    """Prints one row of the table (medians over the rounds) and returns it as a dict."""
    N, D, H, C = CONFIGS[config]

    def median_of(key):
        values = [r[key] for r in rounds if r[key] is not None]
        return statistics.median(values) if values else None

    def torch_median(key):  # the median time, with the OpenBLAS threads of the round nearest it
        timed = [r[key] for r in rounds if r[key][0] is not None]
        if not timed:
            return None, None
        t = statistics.median(t for t, _ in timed)
        return t, min(timed, key=lambda tb: abs(tb[0] - t))[1]

    ours, numpy_s = median_of("ours"), median_of("numpy")
    (torch1, blas1), (torchn, blasn) = torch_median("torch1"), torch_median("torchn")
    peers = [t for t in (numpy_s, torch1, torchn) if t]
    best = min(peers) if peers else None
    ratio = f"{ours / best:.2f}x" if best else "-"
    gflops = 4.0 * N * D * H / ours * 1e-9

    def torch_cell(t, blas):
        return f"{fmt_time(t)} ({blas}b)" if t else "-"

    print(f"{config:<9}{dtype:<9}{fmt_time(ours):>12}{fmt_time(numpy_s):>12}"
          f"{torch_cell(torch1, blas1):>16}{torch_cell(torchn, blasn):>16}{ratio:>16}"
          f"{gflops:>13.1f}", flush=True)
    for err in set().union(*(r["errors"] for r in rounds)):
        print(f"  ({err})")
    return {"config": config, "dtype": dtype, "ours": ours, "numpy": numpy_s,
            "torch_1_thread": torch1, "torch_1_thread_openblas_threads": blas1,
            f"torch_{threads}_threads": torchn, f"torch_{threads}_threads_openblas_threads": blasn,
            "ours_over_best_peer": ours / best if best else None, "our_gflops": gflops,
            "rounds_ours": [r["ours"] for r in rounds]}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--bench", default=os.path.join(here, "..", "build", "perf", "bench",
                                                        "bench_step"),
                        help="our bench_step binary (default: build/perf/bench/bench_step)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure everything this many times, interleaved, and report the "
                             "median of the rounds")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before each measurement wait up to this long for an idle machine")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--openblas-coretype", metavar="NAME",
                        help="set OPENBLAS_CORETYPE=NAME for ours and the peers alike (e.g. Zen)")
    parser.add_argument("--worker", choices=["numpy", "torch"], dest="peer", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return worker(args)
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {', '.join(unknown)} (known: {', '.join(CONFIGS)})")

    quirks = [f"{k}={os.environ[k]}" for k in QUIRK_VARS if k in os.environ]
    print(f"removed from the subprocesses' environment: {', '.join(quirks) or 'nothing (not set)'}")
    if args.openblas_coretype:
        print(f"set in every subprocess's environment: OPENBLAS_CORETYPE={args.openblas_coretype}")
    print(f"threads: {args.threads}; each time is the median of {args.repetitions} repetitions "
          f"of >= {args.min_time} s; (Nb): torch's OpenBLAS threads in the round nearest the "
          f"median\n")
    header = (f"{'config':<9}{'dtype':<9}{'ours':>12}{'numpy':>12}{'torch 1 thr':>16}"
              f"{f'torch {args.threads} thr':>16}{'ours/best peer':>16}{'our GFLOP/s':>13}")
    print(header)
    print("-" * len(header))
    results = []
    configs, dtypes = args.configs.split(","), args.dtypes.split(",")
    for config in configs:
        # Each round measures our step in every dtype of this config back to back, then the peers,
        # so that our float64 time and the float32 one it is compared with are seconds apart.
        rounds = {dtype: [] for dtype in dtypes}
        for _ in range(args.rounds):
            ours_by_dtype = {dtype: run_ours(config, dtype, args) for dtype in dtypes}
            for dtype in dtypes:
                ours = ours_by_dtype[dtype]
                numpy_s, numpy_err = run_peer("numpy", config, dtype, args.threads, args)
                torch1, blas1, torch_err = run_torch(config, dtype, 1, args)
                torchn, blasn, _ = (run_torch(config, dtype, args.threads, args)
                                    if args.threads != 1 else (torch1, blas1, None))
                rounds[dtype].append({"ours": ours, "numpy": numpy_s, "torch1": (torch1, blas1),
                                      "torchn": (torchn, blasn),
                                      "errors": {numpy_err, torch_err} - {None}})
        rows = {dtype: report(config, dtype, rounds[dtype], args.threads) for dtype in dtypes}
        results += rows.values()
        if "float32" in dtypes and "float64" in dtypes:
            pairs = [r64["ours"] / r32["ours"]
                     for r32, r64 in zip(rounds["float32"], rounds["float64"])]
            ratio = statistics.median(pairs)
            print(f"{config:<9}ours float64/float32: {ratio:.2f}x (median of the rounds' pairs: "
                  f"{', '.join(f'{r:.2f}x' for r in pairs)})", flush=True)
            rows["float64"]["ours_float64_over_float32"] = ratio
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "removed_env": quirks,
                       "openblas_coretype": args.openblas_coretype, "results": results}, f,
                      indent=2)


if __name__ == "__main__":
    main()
