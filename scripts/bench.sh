#!/usr/bin/env bash
# `make bench`: spigot's benchmarks, ending in one table
# (benchmark | value | target | verdict).
#
#   1. release host binaries of the functions and of the hello-world baseline;
#   2. release arm64 Lambda zips (cargo-lambda from the venv) and their sizes;
#   3. init time of each function binary against hello-world (tests/benches/init_time.rs);
#   4. in-process handler latency and drain throughput (tests/benches/spigot.rs);
#   5. gitlab_ingest: parser throughput, peak RSS of whole ingests, bulk sizes
#      (tests/benches/gitlab.rs);
#   6. port_runner + log_tailer: line-to-Port latency and Port calls per minute per run
#      (tests/benches/port.rs);
#   7. aliecs_ingest: records per second from Kafka event JSON to bulk documents
#      (tests/benches/aliecs.rs);
#   8. every function's peak memory at its heaviest load against its MemorySize
#      (tests/benches/memory.rs): a table of its own, after the main one.
#
# A missed target or a benchmark that could not measure is a row (MISSED / FAILED) and
# the exit status stays 0; only the harness itself failing (a build error, a benchmark
# program crashing) exits non-zero, after the table.
#
# Environment: SPIGOT_VENV (default .venv: moto, cargo-lambda, zig), CARGO_TARGET_DIR.

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export SPIGOT_VENV="${SPIGOT_VENV:-$root/.venv}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
functions=(process_webhooks send_from_queue gitlab_ingest port_runner log_tailer aliecs_ingest)
lambda_packages=()
for function in "${functions[@]}"; do lambda_packages+=(-p "$function"); done
zip_limit_bytes=$((4 * 1024 * 1024))

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Rows of each section, in the order the final table shows them.
latency_rows="$work/latency.rows"
zip_rows="$work/zip.rows"
init_rows="$work/init.rows"
gitlab_rows="$work/gitlab.rows"
port_rows="$work/port.rows"
aliecs_rows="$work/aliecs.rows"
touch "$latency_rows" "$zip_rows" "$init_rows" "$gitlab_rows" "$port_rows" "$aliecs_rows"
harness_failed=0

row() { # benchmark value target verdict >> file
  local file="$1"
  shift
  # A `|` inside a cell would split it.
  local cells=("${@//|//}")
  printf '| %s | %s | %s | %s |\n' "${cells[@]}" >>"$file"
}

# The table rows a benchmark program printed: its stdout minus the header lines.
table_rows() {
  grep '^| ' "$1" | grep -v -e '^| benchmark |' -e '^| --- |' || true
}

# Runs one bench target; its rows go to $2. A crash becomes a row and fails the run.
run_bench() {
  local bench="$1" rows="$2" output="$work/$1.out" status=0
  echo "==> cargo bench --bench $bench"
  SPIGOT_BENCH_BIN_DIR="$target_dir/release" \
    cargo bench -p spigot-tests --bench "$bench" >"$output" || status=$?
  table_rows "$output" >>"$rows"
  if ((status != 0)); then
    row "$rows" "benchmark program $bench" - - "CRASHED: exit $status (its output is above)"
    harness_failed=1
  fi
}

echo "==> cargo build --release (host binaries for the init-time benchmark)"
cargo build --release "${lambda_packages[@]}" -p spigot-tests \
  "${functions[@]/#/--bin=}" --bin hello_lambda

echo "==> cargo lambda build --release --arm64 (zip sizes)"
cargo_lambda="$SPIGOT_VENV/bin/cargo-lambda"
lambda_log="$work/cargo-lambda.log"
zip_failure=""
if [[ ! -x "$cargo_lambda" ]]; then
  zip_failure="$cargo_lambda not found: run make venv"
# cargo-lambda cross-compiles with zig from the venv's ziglang wheel: the venv's bin
# goes first on PATH so that it finds it (as the Makefile's build target does).
elif ! PATH="$SPIGOT_VENV/bin:$PATH" "$cargo_lambda" lambda build --release --arm64 \
  --output-format zip "${lambda_packages[@]}" 2>&1 | tee "$lambda_log"; then
  zip_failure="cargo lambda build failed: $(grep -m1 -i 'error' "$lambda_log" || tail -n1 "$lambda_log")"
fi
for function in "${functions[@]}"; do
  benchmark="release zip size, $function (arm64)"
  zip="$target_dir/lambda/$function/bootstrap.zip"
  if [[ -n "$zip_failure" ]]; then
    row "$zip_rows" "$benchmark" - "<= 4 MiB" "FAILED: $zip_failure"
  elif [[ ! -f "$zip" ]]; then
    row "$zip_rows" "$benchmark" - "<= 4 MiB" "FAILED: $zip was not written"
  else
    bytes="$(stat -c %s "$zip")"
    value="$(awk -v b="$bytes" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }')"
    verdict=ok
    ((bytes <= zip_limit_bytes)) || verdict=MISSED
    row "$zip_rows" "$benchmark" "$value" "<= 4 MiB" "$verdict"
  fi
done

run_bench init_time "$init_rows"
run_bench spigot "$latency_rows"
run_bench gitlab "$gitlab_rows"
run_bench port "$port_rows"
run_bench aliecs "$aliecs_rows"

echo "==> cargo bench --bench memory"
memory_output="$work/memory.out"
memory_status=0
SPIGOT_BENCH_BIN_DIR="$target_dir/release" \
  cargo bench -p spigot-tests --bench memory >"$memory_output" || memory_status=$?

# One table, columns padded for the terminal (still valid markdown).
echo
{
  echo "| benchmark | value | target | verdict |"
  echo "| --- | --- | --- | --- |"
  cat "$latency_rows" "$zip_rows" "$init_rows" "$gitlab_rows" "$port_rows" "$aliecs_rows"
} | awk '
  { gsub(/^[|] | [|]$/, ""); n = split($0, cell, / [|] /)
    for (i = 1; i <= n; i++) { rows[NR, i] = cell[i]; if (length(cell[i]) > w[i]) w[i] = length(cell[i]) } }
  END {
    for (r = 1; r <= NR; r++) {
      line = "|"
      for (i = 1; i <= 4; i++) {
        text = rows[r, i]
        if (r == 2) { text = ""; while (length(text) < w[i]) text = text "-" }
        line = line sprintf(" %-" w[i] "s |", text)
      }
      print line
    }
  }'
# The memory table and the notes under it, as the benchmark printed them.
echo
sed -n '/^| function |/,$p' "$memory_output"
if ((memory_status != 0)); then
  echo "benchmark program memory CRASHED: exit $memory_status (its output is above)"
  harness_failed=1
fi
exit "$harness_failed"
