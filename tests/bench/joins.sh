#!/usr/bin/env bash
# INVITE->200 latency of joins, measured with SIPp against a release build of convoke.
#   tests/bench/joins.sh [CALLS] [RATE]        (defaults: 1000 calls at 200/s)
# Prints SIPp's summary (its RTT has 1 ms resolution) and then the same number of joins timed in
# microseconds by examples/join_latency.rs; then first joins to new conferences, with the warm
# worker pool and with --warm-workers 0.
set -euo pipefail
calls=${1:-1000}
rate=${2:-200}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/convoke"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
echo alice-pw | "$bin" user add alice --data "$work/data" 2>/dev/null
serve() {
  "$bin" serve --public-metrics --max-calls-per-source 100000 --max-live-per-account 10000 --max-participants 10000 --sip 127.0.0.1:25060 --http 127.0.0.1:28080 --media-ports 40000-47999 --data "$work/data" "$@" 2>>"$work/server.log" &
  server=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:28080/api/v1/status >/dev/null && break; sleep 0.1; done
}
serve
conf=$(curl -sf -u alice:alice-pw -H 'content-type: application/json' -d '{"name":"bench","pin":"424242"}' \
  http://127.0.0.1:28080/api/v1/conferences | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cd "$work"
sipp -sf "$root/tests/sipp/join_bench.xml" -s bench -key conf "$conf" -key pin 424242 \
  -m "$calls" -r "$rate" -l 500 -p 25070 -nostdin 127.0.0.1:25060 >sipp.out 2>&1 || true
grep -E "Successful call|Failed call|Response Time 1" sipp.out | tail -3
cd "$root"
cargo run --release --quiet --example join_latency -- 127.0.0.1:25060 "$conf" 424242 "$calls"
# First joins to new conferences, each on a fresh server: with the warm pool (default 4), then
# with none.
kill "$server"; wait "$server" 2>/dev/null || true
serve
echo "with the warm pool (--warm-workers 4):"
cargo run --release --quiet --example join_latency -- 127.0.0.1:25060 --fresh 127.0.0.1:28080 alice alice-pw "$calls"
kill "$server"; wait "$server" 2>/dev/null || true
serve --warm-workers 0
echo "with --warm-workers 0:"
cargo run --release --quiet --example join_latency -- 127.0.0.1:25060 --fresh 127.0.0.1:28080 alice alice-pw "$calls"
