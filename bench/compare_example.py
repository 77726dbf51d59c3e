#!/usr/bin/env python3
"""Whole runs of the bundled example against bench/pytorch_two_layer.py, in interleaved pairs.

Issue 4's target for the example is a whole run (load + train + evaluate) in at most half the
wall time of a PyTorch script training the same model the same way, at the same or better test
accuracy. Both sides' wall times move a lot on a shared machine, so this runs them in pairs, one
right after the other (waiting for an idle machine before each, with --wait-quiet), and reports
every pair's ratio and the median over the pairs. Test accuracy depends on the seed (the
initial weights, the shuffling, the validation split), so with --seeds pair k trains both sides
with seed k and the line at the end also gives each side's mean accuracy over the seeds.

  /usr/bin/python3 bench/compare_example.py --pairs 3 --wait-quiet 60 --json results.json
  /usr/bin/python3 bench/compare_example.py --pairs 5 --seeds --wait-quiet 60

Needs the release build of examples/two_layer_net, Fashion-MNIST (dataset-fashion-mnist) and,
for the peer, python3-numpy and python3-torch.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from compare_peers import QUIRK_VARS, wait_quiet

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_ACCURACY = re.compile(r"test (\d\.\d+)")


def timed(command, env):
    """Runs command; returns (wall seconds, test accuracy), or raises with its output."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    found = TEST_ACCURACY.findall(done.stdout)
    if not found:
        raise RuntimeError(f"{' '.join(command)} printed no test accuracy:\n{done.stdout}")
    return seconds, float(found[-1])


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--example", default=os.path.join(HERE, "..", "build", "perf", "examples",
                                                          "two_layer_net"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="the PyTorch script's --threads (1 was its fastest here)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before each run, wait up to this long for an idle machine")
    parser.add_argument("--seeds", action="store_true",
                        help="pair k trains both sides with --seed k (else each its default, 0)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in QUIRK_VARS}
    pairs = []
    with tempfile.TemporaryDirectory() as out:
        for k in range(args.pairs):
            seed = ["--seed", str(k)] if args.seeds else []
            wait_quiet(args.wait_quiet)
            ours = timed([args.example, "--quiet", "--out", os.path.join(out, str(k))] + seed, env)
            wait_quiet(args.wait_quiet)
            torch = timed([sys.executable, os.path.join(HERE, "pytorch_two_layer.py"),
                           "--threads", str(args.torch_threads)] + seed, env)
            pairs.append({"seed": k if args.seeds else 0,
                          "ours_seconds": ours[0], "ours_test_accuracy": ours[1],
                          "torch_seconds": torch[0], "torch_test_accuracy": torch[1],
                          "ratio": ours[0] / torch[0]})
            print(f"pair {k + 1}{f' (seed {k})' if args.seeds else ''}: ours {ours[0]:.1f} s "
                  f"(test {ours[1]:.4f}), PyTorch {torch[0]:.1f} s (test {torch[1]:.4f}): "
                  f"{ours[0] / torch[0]:.2f}x", flush=True)

    summary = {key: statistics.median(p[key] for p in pairs) for key in pairs[0] if key != "seed"}
    print(f"median over {len(pairs)} pairs: ours {summary['ours_seconds']:.1f} s, PyTorch "
          f"{summary['torch_seconds']:.1f} s, ratio {summary['ratio']:.2f}x (target <= 0.5x)")
    mean = {}
    if args.seeds:
        mean = {side: statistics.mean(p[f"{side}_test_accuracy"] for p in pairs)
                for side in ("ours", "torch")}
        print(f"mean test accuracy over seeds 0-{len(pairs) - 1}: ours {mean['ours']:.4f}, "
              f"PyTorch {mean['torch']:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"pairs": pairs, "median": summary, "mean_test_accuracy": mean}, f,
                      indent=2)


if __name__ == "__main__":
    main()
