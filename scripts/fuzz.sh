#!/usr/bin/env bash
# `make fuzz` / `make fuzz-ci`: every fuzz target of fuzz/ for FUZZ_SECONDS each, then one
# table (target | execs | execs/s | corpus | findings). Exits non-zero when a target
# found something: its input is in fuzz/artifacts/<target>/, and becomes a regression
# test in the crate the target checks.
#
# Needs the nightly toolchain (installed with rustup when missing) and cargo-fuzz
# (installed from crates.io when missing). Corpora grow in fuzz/corpus/ (not committed),
# seeded at every run from events/ (the sample events), the Kafka values inside them,
# and fuzz/seeds/ (runner traces, bulk answers, progressiveText answers).
#
# Environment: FUZZ_SECONDS (default 60), FUZZ_RUNS (stop a target after that many execs
# instead, within FUZZ_SECONDS), FUZZ_TARGETS (default: all), FUZZ_SANITIZER
# (default none: the code fuzzed is safe Rust, and without ASan a target runs 2-3x the
# execs; `address` for the unsafe code of dependencies such as base64-simd and memchr).

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/fuzz"
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "==> installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

cd "$fuzz"
mapfile -t all_targets < <(cargo +nightly fuzz list)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"

echo "==> building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
cargo +nightly fuzz build -s "$sanitizer"

echo "==> seeding the corpora"
python3 - "$root" <<'PY'
import base64, glob, json, os, shutil, sys
root = sys.argv[1]
corpus = os.path.join(root, "fuzz", "corpus")
def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)
def events(*dirs):
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(root, "events", d, "*.json"))):
            yield d + "-" + os.path.basename(path), open(path, "rb").read()
for name, data in events("process_webhooks"):
    put("webhook_request", name, data)
for name, data in events("gitlab_ingest"):
    put("gitlab_intake_request", name, data)
# Kafka events, and the values inside them (protobuf for aliecs_ingest).
topics = ["aliecs.env_state.RUNNING", "aliecs.env_leave_state.RUNNING", "aliecs.env_list.RUNNING",
          "aliecs.start_activity", "aliecs.run", "aliecs.environment", "aliecs.core",
          "aliecs.task", "aliecs.integrated_service.dcs", "aliecs.env_state.CONFIGURED"]
for name, data in events("port_runner", "aliecs_ingest"):
    put("kafka_event", name, data)
    for group, records in (json.loads(data).get("records") or {}).items():
        for i, record in enumerate(records):
            try:
                value = base64.b64decode(record.get("value") or "", validate=True)
            except Exception:
                continue
            topic = record.get("topic", "")
            put("aliecs_legacy_protobuf", f"{name}-{group}-{i}", value)
            # The target's topic byte: the topic itself, else one of its kind.
            kinds = {"aliecs.env_state.": 0, "aliecs.env_leave_state.": 1, "aliecs.env_list.": 2}
            index = topics.index(topic) if topic in topics else next(
                (n for prefix, n in kinds.items() if topic.startswith(prefix)), 4)
            put("aliecs_timeline_json", f"{name}-{group}-{i}", bytes([index, 255]) + value)
for d in glob.glob(os.path.join(root, "fuzz", "seeds", "*")):
    for path in glob.glob(os.path.join(d, "*")):
        put(os.path.basename(d), os.path.basename(path), open(path, "rb").read())
PY

rows=()
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  before=$(find "artifacts/$target" -type f | wc -l)
  log="$(mktemp)"
  echo "==> $target: ${seconds}s"
  # -max_len: events and traces of a few KiB; -timeout: a slow input is a finding too.
  if ! cargo +nightly fuzz run -s "$sanitizer" "$target" "corpus/$target" -- \
      -max_total_time="$seconds" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    # The panic and the input that caused it.
    grep -m1 -A12 -E "panicked|ERROR: libFuzzer|==ERROR" "$log" || tail -40 "$log"
    grep -A2 "Failing input" "$log" || true
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "corpus/$target" -type f | wc -l)
  findings=$(( $(find "artifacts/$target" -type f | wc -l) - before ))
  if [[ -z "$execs" ]]; then findings=$((findings > 0 ? findings : 1)); fi
  if (( findings > 0 )); then status=1; fi
  rows+=("$target|${execs:-?}|${rate:-?}|$units|$findings")
  rm -f "$log"
done

echo
printf '%-26s %14s %10s %8s %9s\n' target execs execs/s corpus findings
for row in "${rows[@]}"; do
  IFS='|' read -r t e r u f <<<"$row"
  printf '%-26s %14s %10s %8s %9s\n' "$t" "$e" "$r" "$u" "$f"
done
if (( status != 0 )); then
  echo
  echo "findings: see fuzz/artifacts/<target>/ (reproduce: cd fuzz && cargo +nightly fuzz run -s $sanitizer <target> <file>)"
fi
exit "$status"
