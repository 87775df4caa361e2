#!/usr/bin/env bash
# `npm test`: set up whatever is missing, build, run the whole tap suite, and
# print the plain "N passed, N failed" line CI reads.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BERTH_SETUP_BROWSER=1 BERTH_SETUP_COMPOSE=1 bash scripts/setup.sh || exit 1

# A private Docker engine for the tests that provision node containers or run
# compose.ha.yml, and the images they run (built locally: there is no registry).
bash scripts/dockerd.sh start >/dev/null || exit 1
trap 'bash scripts/dockerd.sh stop' EXIT
eval "$(bash scripts/dockerd.sh env)"
bash deploy/docker/build-local-image.sh >/dev/null || exit 1
bash deploy/docker/build-etcd-image.sh >/dev/null || exit 1
bash deploy/docker/build-test-images.sh >/dev/null || exit 1

# Tests live in test/unit, test/integration and test/e2e; drop what older layouts compiled to test/dist/.
rm -f test/dist/*.test.js test/dist/*.test.js.map test/dist/*.test.d.ts
mkdir -p test-artifacts
out=test-artifacts/tap-output.txt
# Without arguments: the fast loop first (test/unit: pure, no processes, about
# 10 s), and only when it passes the whole suite, with coverage: test/unit again,
# test/integration (real etcd and processes) and test/e2e (Docker, compose, the
# browser). tap orders the files of one run by name, hence two runs. The two
# runs that load a whole cluster for minutes (the chaos run and 3 minutes of a
# slow etcd) measure timing: they run last, one at a time, so they do not
# share the 2 cores with other files (nor slow those down).
if [ "$#" -eq 0 ]; then
  npx --no-install tap --disable-coverage --allow-empty-coverage test/dist/unit/*.test.js 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 0 ]; then
    heavy=(test/dist/integration/chaos.test.js test/dist/integration/slow-etcd.test.js)
    mapfile -t rest < <(ls test/dist/unit/*.test.js test/dist/integration/*.test.js test/dist/e2e/*.test.js | grep -v -x -F -f <(printf '%s\n' "${heavy[@]}"))
    npx --no-install tap "${rest[@]}" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    if [ "$status" -eq 0 ]; then
      # (Coverage is the first run's: two files alone would fall below the thresholds.)
      npx --no-install tap --disable-coverage --allow-empty-coverage --jobs 1 "${heavy[@]}" 2>&1 | tee -a "$out"
      status=${PIPESTATUS[0]}
    fi
  fi
else
  npx --no-install tap "$@" 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
fi

# Each tap run ends with "# { total: N, pass: N, fail: N, ... }" (fail omitted when 0): add up the runs in $out.
summaries=$(grep -E '^# \{ total: [0-9]+' "$out")
sum() { sed -nE "s/.*$1: ([0-9]+).*/\1/p" <<<"$summaries" | awk '{ n += $1 } END { if (NR) print n }'; }
pass=$(sum pass); fail=$(sum fail); skip=$(sum skip)
pass=${pass:-0}; fail=${fail:-0}
if [ "$status" -ne 0 ] && [ "$fail" = 0 ]; then fail=1; fi # e.g. a crash or a coverage threshold
# CI shows only the end of what this prints: name each failed assertion there,
# with the first lines of its diagnostics, so a failure can be told from the
# tail alone (the whole output stays in $out).
if [ "$fail" != 0 ]; then
  echo
  echo "# Failed (from $out):"
  awk '
    /^[[:space:]]*not ok / { print; keep = 1; shown = 0; n++; next }
    /^[[:space:]]*(ok |# Subtest)/ { keep = 0 }
    keep && shown < 8 && /^[[:space:]]+(found|wanted|message|error|code|diff|pattern|lineNumber):/ { print; shown++ }
    n >= 20 && !keep { exit }
  ' "$out" | head -n 120
fi
echo
if [ -n "${skip:-}" ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
exit "$status"
