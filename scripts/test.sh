#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine with the .NET SDK, then runs every
# test. Needs root: the tests make network namespaces ("pods") and capture in them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dotnet build KubeCapture.sln -c Release -nologo -v quiet
# The agent and operator images (podman), which the image tests run: built when missing or changed,
# meanwhile dotnet format checks the sources (two steps that share nothing, one core each: on a fresh
# clone the images take minutes, the format check about one).
bash scripts/images.sh &
images=$!
format_status=0 images_status=0
dotnet format KubeCapture.sln --verify-no-changes --no-restore || format_status=$?
wait "$images" || images_status=$?
((format_status == 0)) || { echo "dotnet format: FAILED (exit $format_status)"; exit "$format_status"; }
((images_status == 0)) || { echo "images: FAILED (exit $images_status)"; exit "$images_status"; }
results=$(mktemp -d)
status=0
# A test that hangs is named and ended after 5 minutes (--blame-hang) instead of stalling the run.
dotnet test KubeCapture.sln -c Release --no-build --logger "trx" --logger "console;verbosity=minimal" --results-directory "$results" \
  --blame-hang --blame-hang-timeout 5m --blame-hang-dump-type none -- RunConfiguration.TestSessionTimeout=1500000 || status=$?
# One closing line for CI: N passed, N failed.
passed=0 failed=0
for trx in "$results"/*.trx; do
  [[ -f "$trx" ]] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx")
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters"); f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
echo "tests: $passed passed, $failed failed"
# Every benchmark, briefly (bench/smoke.sh): a bench is code too, and one that no longer builds or runs fails CI.
bench_status=0
bash bench/smoke.sh || bench_status=$?
((bench_status == 0)) || echo "bench smoke: FAILED (exit $bench_status)"
((status != 0)) || status=$bench_status
exit "$status"
