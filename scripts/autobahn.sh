#!/usr/bin/env bash
# Autobahn|Testsuite fuzzingclient against lwsd's echo protocol, diffed against the
# golden summary tests/autobahn/expected-summary.txt (a regression shows as a diff).
#
# Usage: scripts/autobahn.sh [--tls] [--quick] [--port N] [--update] [LWSD]
#   LWSD       the lwsd binary to test (default target/release/lwsd); nothing is built
#   --tls      over TLS: lwsd -s (its self-signed certificate, which the fuzzingclient
#              does not verify) and wss://; the same golden summary as over ws://
#   --quick    skip the permessage-deflate cases 12.* and 13.* (301 cases, ~20 s);
#              compared against the golden file's core part only
#   --port N   port for lwsd (default 9001; must be free)
#   --timeout S  hard bound on the fuzzingclient's run (default 2400 s: the full suite
#              takes ~11 min over ws:// on an idle 2-core machine; over wss:// it took
#              22 min on a busy one, past run-fuzzingclient's own 1200 s default)
#   --update   write the summary as the new golden file instead of diffing (full only)
# Env: AUTOBAHN_TOOLS (default ../shared/tools/autobahn from the repo root, or two
#      levels up for a git worktree, or beside the repository a local clone came
#      from), AUTOBAHN_OUT (report dir, default
#      target/autobahn-reports, target/autobahn-reports-tls with --tls).
# Exit: 0 all as expected; 1 a FAILED/UNIMPLEMENTED case or a diff; 2 harness trouble.
#
# The summary: per-behavior counts for the core cases (1.* to 11.*) and the
# permessage-deflate ones (12.*, 13.*), then every case whose behavior or close
# behavior is not OK, sorted by case id. No timings, so it is stable run to run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0; PORT=9001; UPDATE=0; LWSD=""; TLS=0; TMO=2400
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --tls) TLS=1 ;;
    --port) PORT="$2"; shift ;;
    --timeout) TMO="$2"; shift ;;
    --update) UPDATE=1 ;;
    -h|--help) sed -n 2,24p "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) LWSD="$1" ;;
  esac; shift
done
LWSD=${LWSD:-$ROOT/target/release/lwsd}
GOLDEN=$ROOT/tests/autobahn/expected-summary.txt
# (No `$(test && echo ..)` here: under `set -e` a substitution that exits 1 ends the
# script without a word, which the ws:// run did.)
SCHEME=ws; LWSD_TLS=(); SUFFIX=""
if [ "$TLS" = 1 ]; then SCHEME=wss; LWSD_TLS=(-s); SUFFIX=-tls; fi
OUT=${AUTOBAHN_OUT:-$ROOT/target/autobahn-reports$SUFFIX}
if [ -z "${AUTOBAHN_TOOLS:-}" ]; then
  # A local clone (git clone /work/main /tmp/x) finds them beside the repository it was
  # cloned from.
  ORIGIN=$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)
  case "$ORIGIN" in /*) ;; *) ORIGIN="" ;; esac
  for d in "$ROOT/../shared/tools/autobahn" "$ROOT/../../shared/tools/autobahn" \
           ${ORIGIN:+"$ORIGIN/../shared/tools/autobahn"}; do
    [ -x "$d/run-fuzzingclient.sh" ] && { AUTOBAHN_TOOLS=$(cd "$d" && pwd); break; }
  done
fi
[ -n "${AUTOBAHN_TOOLS:-}" ] && [ -x "$AUTOBAHN_TOOLS/run-fuzzingclient.sh" ] ||
  { echo "autobahn tools not found (set AUTOBAHN_TOOLS)" >&2; exit 2; }
[ -x "$LWSD" ] || { echo "no lwsd binary at $LWSD (cargo build --release -p lwsd)" >&2; exit 2; }
[ "$UPDATE" = 1 ] && [ "$QUICK" = 1 ] && { echo "--update needs the full suite" >&2; exit 2; }
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is in use (pick another with --port)" >&2; exit 2
fi

"$AUTOBAHN_TOOLS/setup.sh"

mkdir -p "$OUT"
# No metrics endpoint: its default port may be taken, and the run does not need it.
"$LWSD" -p "$PORT" --ws-default lws-echo -j 1 --metrics-addr off "${LWSD_TLS[@]}" \
  >"$OUT/lwsd.log" 2>&1 &
LWSD_PID=$!
stop() {
  kill -TERM "$LWSD_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$LWSD_PID" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$LWSD_PID" 2>/dev/null || true
}
trap stop EXIT
up=0
for _ in $(seq 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then up=1; break; fi
  kill -0 "$LWSD_PID" 2>/dev/null || break
  sleep 0.1
done
[ "$up" = 1 ] || { echo "lwsd did not start; log:" >&2; cat "$OUT/lwsd.log" >&2; exit 2; }

ARGS=(--timeout "$TMO"); [ "$QUICK" = 1 ] && ARGS+=(--no-compression)
START=$(date +%s)
set +e
"$AUTOBAHN_TOOLS/run-fuzzingclient.sh" "${ARGS[@]}" --agent lwsd \
  "$SCHEME://127.0.0.1:$PORT" "$OUT"
RC=$?
set -e
END=$(date +%s)
echo "autobahn ($SCHEME): wall time $((END - START)) s"
[ "$RC" = 2 ] && { echo "autobahn harness failed" >&2; exit 2; }
kill -0 "$LWSD_PID" 2>/dev/null || { echo "lwsd died during the run" >&2; exit 1; }

SUMMARY=$OUT/summary.txt
python3 - "$OUT/index.json" >"$SUMMARY" <<'PY'
import json, sys, collections
idx = json.load(open(sys.argv[1]))
cases = next(iter(idx.values()))
key = lambda c: [int(x) for x in c.split(".")]
part = lambda c: "deflate" if key(c)[0] in (12, 13) else "core"
print("# Autobahn fuzzingclient vs lwsd -j 1 --ws-default lws-echo (scripts/autobahn.sh)")
for p in ("core", "deflate"):
    mine = [v for c, v in cases.items() if part(c) == p]
    if not mine:
        continue
    beh = collections.Counter(v["behavior"] for v in mine)
    print("%s cases %d" % (p, len(mine)))
    for b in ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED"):
        print("%s %s %d" % (p, b, beh.pop(b, 0)))
    for b, n in sorted(beh.items()):
        print("%s %s %d" % (p, b, n))
for c in sorted(cases, key=key):
    v = cases[c]
    if v["behavior"] != "OK" or v["behaviorClose"] != "OK":
        print("case %s %s close=%s" % (c, v["behavior"], v["behaviorClose"]))
PY
cat "$SUMMARY"
if [ "$UPDATE" = 1 ]; then
  mkdir -p "$(dirname "$GOLDEN")"; cp "$SUMMARY" "$GOLDEN"; echo "wrote $GOLDEN"
  exit "$RC"
fi
EXPECTED=$OUT/expected.txt
if [ "$QUICK" = 1 ]; then
  grep -v -E '^(deflate |case 1[23]\.)' "$GOLDEN" >"$EXPECTED"
else
  cp "$GOLDEN" "$EXPECTED"
fi
if ! diff -u "$EXPECTED" "$SUMMARY"; then
  echo "autobahn: summary differs from $GOLDEN" >&2; exit 1
fi
[ "$RC" = 0 ] || { echo "autobahn: FAILED/UNIMPLEMENTED cases" >&2; exit 1; }
echo "autobahn ($SCHEME): as expected"
