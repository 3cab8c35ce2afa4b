#!/usr/bin/env bash
# Proof of stability: runs the whole `npm test` N times on a fresh clone of this checkout's HEAD,
# optionally beside a CPU hog burning one core, and prints `N passed, M failed`. After every
# round it checks that no process of the round is left (a gate, a backend, a test process):
# every process the round starts carries GATE_BENCH_RUN=<round marker> (read from /proc), and
# any process running the clone's code counts too.
#
#   scripts/stress-tests.sh [-n ROUNDS] [--hog] [--keep]
#     -n ROUNDS   rounds of npm test (default 10)
#     --hog       burn one core (taskset -c 1 node -e 'for(;;){}') during every round
#     --keep      keep the clone (default: removed at the end)
# A round that fails keeps its log in the clone's .stress/ folder and the script goes on.
set -uo pipefail

rounds=10
hog=0
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) rounds="${2:?-n needs a number}"; shift 2 ;;
    --hog) hog=1; shift ;;
    --keep) keep=1; shift ;;
    *) echo "stress-tests: unknown option $1 (-n ROUNDS, --hog, --keep)" >&2; exit 2 ;;
  esac
done
case "$rounds" in ''|*[!0-9]*|0) echo "stress-tests: -n must be a positive number, not $rounds" >&2; exit 2 ;; esac

src="$(cd "$(dirname "$0")/.." && pwd)"
clone="$(mktemp -d /tmp/gate-stress.XXXXXX)"
hog_pid=""
round_pid=""
cleanup() {
  [ -n "$hog_pid" ] && kill "$hog_pid" 2>/dev/null
  # A round cut short (Ctrl-C, SIGTERM): end its whole process group, npm test and all below it.
  [ -n "$round_pid" ] && kill -TERM -- "-$round_pid" 2>/dev/null
  [ "$keep" = 1 ] || rm -rf "$clone"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git clone -q "$src" "$clone" || { echo "stress-tests: git clone failed" >&2; exit 1; }
cd "$clone" || exit 1
mkdir -p .stress
echo "stress-tests: fresh clone of $(git rev-parse --short HEAD) in $clone; npm ci…"
npm ci --no-audit --no-fund >.stress/npm-ci.log 2>&1 || { echo "stress-tests: npm ci failed (.stress/npm-ci.log)" >&2; keep=1; exit 1; }

if [ "$hog" = 1 ]; then
  if command -v taskset >/dev/null 2>&1; then
    taskset -c 1 node -e 'for(;;){}' &
  else
    node -e 'for(;;){}' &
  fi
  hog_pid=$!
  echo "stress-tests: CPU hog running (pid $hog_pid)"
fi

# Processes of a round still running: the marker in their environment, or the clone's path in their command line.
left_behind() {
  local marker="GATE_BENCH_RUN=$1" p pid
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    [ "$pid" = "$$" ] || [ "$pid" = "$hog_pid" ] && continue
    { grep -q ' Z ' "$p/stat"; } 2>/dev/null && continue
    if { tr '\0' '\n' <"$p/environ" | grep -qx "$marker"; } 2>/dev/null ||
      { tr '\0' ' ' <"$p/cmdline" | grep -q "$clone/"; } 2>/dev/null; then
      echo "$pid $({ tr '\0' ' ' <"$p/cmdline" | cut -c1-160; } 2>/dev/null)"
    fi
  done
}

passed=0
failed=0
for i in $(seq 1 "$rounds"); do
  marker="stress-$$-$i"
  log=".stress/round-$i.log"
  start=$(date +%s.%N)
  # Its own process group (setsid), so an interrupted run can end all of it.
  GATE_BENCH_RUN="$marker" setsid npm test >"$log" 2>&1 &
  round_pid=$!
  wait "$round_pid"
  status=$?
  round_pid=""
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  summary=$(grep -E '^# (pass|fail) ' "$log" | tr '\n' ' ')
  left=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do # a bounded wait: children may still be exiting
    left="$(left_behind "$marker")"
    [ -z "$left" ] && break
    sleep 1
  done
  if [ "$status" = 0 ] && [ -z "$left" ]; then
    passed=$((passed + 1))
    echo "round $i: passed in ${secs} s (${summary% })"
  else
    failed=$((failed + 1))
    keep=1
    echo "round $i: FAILED in ${secs} s (exit $status; ${summary% }); log: $clone/$log"
    grep -E '^\s*not ok ' "$log" | head -10 | sed 's/^/    /'
    if [ -n "$left" ]; then
      echo "    processes left behind:"
      echo "$left" | sed 's/^/      /'
      echo "$left" | awk '{print $1}' | xargs -r kill -9 2>/dev/null
    fi
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
