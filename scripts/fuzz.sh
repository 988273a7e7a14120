#!/usr/bin/env bash
# Runs every libFuzzer target of the fuzz preset (build/fuzz) for FUZZ_SECONDS each, one after
# the other, and fails if any of them finds a crash, leak, timeout or broken invariant.
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_TARGETS  which targets (default: all five)
#   FUZZ_SEED     libFuzzer's -seed (CI fixes it, so a CI run explores the same inputs as a run
#                 here; unset: a new seed each run)
# Inputs it finds go to build/fuzz/work/<target>/corpus (the seeds in tests/fuzz/corpus/<target>
# are read, never written); a crashing input lands in build/fuzz/work/<target>/artifacts/: copy
# it into tests/fuzz/corpus/<target>/ as a regression input once the bug is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"fuzz_config fuzz_topic fuzz_scenario fuzz_partition_log fuzz_wal_reader"}
bin=build/fuzz/tests/fuzz
work=build/fuzz/work
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in $targets; do
  [ -x "$bin/$t" ] || { echo "ringflow-fuzz: $bin/$t is not built (make fuzz builds it)" >&2; exit 1; }
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$work/$t/artifacts/")
  if [ -n "${FUZZ_SEED:-}" ]; then args+=(-seed="$FUZZ_SEED"); fi
  case $t in
    fuzz_config|fuzz_scenario) args+=(-dict=tests/fuzz/toml.dict -max_len=4096) ;;
    fuzz_topic) args+=(-dict=tests/fuzz/fuzz_topic.dict -max_len=800) ;;
    fuzz_partition_log) args+=(-max_len=4096) ;;
    fuzz_wal_reader) args+=(-max_len=32768) ;;  # a 4 KiB segment header + frames, two files
  esac
  log="$work/$t/log"
  if "$bin/$t" "${args[@]}" "$work/$t/corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    echo "ringflow-fuzz: $t: ok, ${secs}s, ${execs:-?} executions, ${last:-no coverage line}"
  else
    echo "ringflow-fuzz: $t: FAILED (log: $log, inputs: $work/$t/artifacts/)" >&2
    tail -40 "$log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "ringflow-fuzz: failing targets: ${failed[*]}" >&2
  exit 1
fi
