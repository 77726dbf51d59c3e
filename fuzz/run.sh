#!/usr/bin/env bash
# Runs every libFuzzer target of the fuzz preset for a bounded time, two at a time, each on a copy
# of its seed corpus (fuzz/corpus/<target>, left unchanged) with limits that make a hang, a large
# allocation or a crash fail the run. Prints executions and exec/s per target; exits non-zero if
# any target found something (the reproducer is in <build>/fuzz-out/artifacts/).
#
#   fuzz/run.sh [seconds per target (default 45)] [build dir (default build/fuzz)]
#
# Build first: cmake --workflow --preset fuzz. Reproduce a crash: <build>/fuzz/fuzz_<target> FILE.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-45}
build=${2:-build/fuzz}
out="$build/fuzz-out"
targets=(idx cifar10 safetensors cli)
declare -A max_len=([idx]=8192 [cifar10]=10000 [safetensors]=4096 [cli]=1024)

rm -rf "$out"
mkdir -p "$out/artifacts"

run_one() {
  local t=$1
  local dict=()
  [ -f "fuzz/$t.dict" ] && dict=("-dict=fuzz/$t.dict")
  mkdir -p "$out/corpus/$t"
  # -timeout: one input may take 10 s at most; -malloc_limit_mb: no single allocation above
  # 256 MB (the inputs are a few KB); -rss_limit_mb: the whole process stays under 1 GB.
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
    -malloc_limit_mb=256 -max_len="${max_len[$t]}" "${dict[@]}" -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" "fuzz/corpus/$t" >"$out/$t.log" 2>&1
}

status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do
    run_one "$t" &
    pids+=("$!:$t")
  done
  for entry in "${pids[@]}"; do
    pid=${entry%%:*} t=${entry#*:}
    if wait "$pid"; then
      execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")
      rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$t.log")
      rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$out/$t.log")
      units=$(find "$out/corpus/$t" "fuzz/corpus/$t" -type f | wc -l)
      echo "fuzz_$t: ${seconds} s, $execs executions, $rate exec/s, peak RSS $rss MB, corpus $units files: no crash"
    else
      status=1
      echo "fuzz_$t: FAILED (log: $out/$t.log, reproducer: $(ls "$out/artifacts/$t-"* 2>/dev/null | head -1))"
      tail -n 60 "$out/$t.log"
    fi
  done
done
exit $status
