#!/usr/bin/env bash
# MQTT 3.1.1 conformance run (issue 11): the Eclipse Paho interoperability tests
# (eclipse/paho.mqtt.testing, interoperability/client_test.py, EPL-1.0/EDL-1.0) against
# Outpost's broker, a real `outpost start` process on loopback with a temp data dir.
#
# The suite is not published on any registry this project's machines and CI reach (npm,
# Debian; PyPI has only the paho-mqtt client library, not the test suite), and its source
# is not vendored here. Give a checkout of paho.mqtt.testing with PAHO_TESTING_DIR:
#
#   PAHO_TESTING_DIR=/path/to/paho.mqtt.testing bash bench/conformance.sh
#   (OUTPOST_BENCH_CLI=/path/to/dist/runtime/cli.js picks a particular build)
#
# Prints one line per test (succeeded/failed) and exits 0 only when all of them succeed;
# exits 2 when the suite is not available.
set -euo pipefail
cd "$(dirname "$0")/.."

suite="${PAHO_TESTING_DIR:-}/interoperability"
if [ -z "${PAHO_TESTING_DIR:-}" ] || [ ! -f "$suite/client_test.py" ]; then
  echo "conformance: the Paho interoperability suite is not available here." >&2
  echo "  Set PAHO_TESTING_DIR to a checkout of eclipse/paho.mqtt.testing (needs interoperability/client_test.py)." >&2
  echo "  It is not on npm, Debian or PyPI, and this machine reaches no other source." >&2
  exit 2
fi
command -v python3 >/dev/null || { echo "conformance: python3 is needed" >&2; exit 2; }

if [ -n "${OUTPOST_BENCH_CLI:-}" ]; then
  cli=(node "$OUTPOST_BENCH_CLI")
elif [ -f dist/runtime/cli.js ] && [ "${OUTPOST_TEST_FROM_SOURCE:-}" != 1 ]; then
  cli=(node dist/runtime/cli.js)
else
  cli=(node --import tsx runtime/cli.ts)
fi

dir="$(mktemp -d /tmp/outpost-conformance-XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# The suite's own topics (TopicA, Topic/C, ...) are outside the gateway's `outpost/` tree,
# so they meet the plain broker; storage and the broker persistence are on as in production.
cat >"$dir/outpost.yaml" <<EOF
gateway: { id: conformance }
dataDir: $dir/data
log: { level: warn }
broker: { mqtt: { host: 127.0.0.1, port: 0 }, websocket: { enabled: false } }
http: { host: 127.0.0.1, port: 0 }
dashboard: { enabled: false }
EOF
env -u OUTPOST_TEST_FROM_SOURCE -u OUTPOST_BENCH_CLI "${cli[@]}" start -c "$dir/outpost.yaml" >"$dir/out.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's/.*MQTT on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/out.log" | head -n1)"
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/out.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "conformance: outpost did not become ready" >&2; cat "$dir/out.log" >&2; exit 1; }
echo "Outpost broker on 127.0.0.1:$port"

# -z zero-length client id, -d $-topics; -s (subscribe failure) is left out: Outpost refuses
# subscriptions only by ACL, and anonymous loopback clients have none.
(cd "$suite" && timeout 300 python3 client_test.py -h 127.0.0.1 -p "$port" -z -d) | tee "$dir/result.log"
echo "--- per test"
grep -E ' test (succeeded|failed)$' "$dir/result.log" | grep -v '^test suite' || true
passed=$(grep -cE ' test succeeded$' "$dir/result.log" || true)
failed=$(grep -E ' test failed$' "$dir/result.log" | grep -vc '^test suite' || true)
echo "$passed passed, $failed failed"
kill -0 "$pid" 2>/dev/null || { echo "conformance: the outpost process died during the run" >&2; exit 1; }
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
