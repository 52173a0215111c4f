#!/usr/bin/env bash
# Signalling under steady load: complete joins (INVITE with SDP, 200, ACK, BYE) into one
# conference at increasing rates, each rate held for STEP seconds, against convoke and, in the
# same run with the same SIPp caller, against SIPp's own UAS.
#
#   benches/joins_steady.sh [RATES] [STEP]      (defaults: "1000 2000 3000 4000" and 60)
#   REFERENCE=0 benches/joins_steady.sh ...      (convoke only, without SIPp's UAS)
#
# The server under test is pinned to CPU 0, the SIPp caller to CPU 1 (two cores: run it on an
# otherwise idle machine). For each rate it prints: calls made, successful, failed, the
# caller's retransmissions, the server's own retransmissions, datagrams it dropped for a full
# signalling queue and calls it shed with 503 (convoke only), CPU per join,
# the peak of live transactions and of resident memory, memory per live transaction, and the
# resident memory once the step's transactions have expired. Last line per target: the
# highest rate with no failed call and no retransmission.
set -euo pipefail
rates=${1:-"1000 2000 3000 4000"}
step=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/convoke"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
hz=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
transactions() {
  curl -sf http://127.0.0.1:38081/api/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["transactions"])' 2>/dev/null || echo 0
}
metric() {
  curl -sf http://127.0.0.1:38081/metrics | awk -v m="$1" '$1 == m {print $2}' || echo 0
}

# One step: SIPp calls TARGET at RATE for STEP seconds. Prints the step's figures.
run_step() {
  local name=$1 pid=$2 target=$3 rate=$4 uri_user=$5
  local calls=$((rate * step))
  local t0 x0 q0 s0 peak_rss=0 peak_tx=0
  t0=$(cpu_ticks "$pid")
  x0=$([ "$name" = convoke ] && metric convoke_sip_retransmissions_total || echo 0)
  q0=$([ "$name" = convoke ] && metric convoke_sip_queue_full_drops_total || echo 0)
  s0=$([ "$name" = convoke ] && metric convoke_calls_shed_total || echo 0)
  (cd "$work" && taskset -c 1 sipp -sf "$root/tests/sipp/join_bench.xml" -s bench -key conf "$uri_user" -key pin 424242 \
    -m "$calls" -r "$rate" -l $((rate * 40)) -p 25070 -mp 26000 -nostdin -trace_stat -stf "$work/stat.csv" -fd 1 \
    -timeout $((step + 60)) "$target" >"$work/sipp.out" 2>&1) &
  local sipp=$!
  while kill -0 "$sipp" 2>/dev/null; do
    local r; r=$(rss_kib "$pid"); [ "$r" -gt "$peak_rss" ] && peak_rss=$r
    if [ "$name" = convoke ]; then
      local t; t=$(transactions); [ "$t" -gt "$peak_tx" ] && peak_tx=$t
    fi
    sleep 1
  done
  wait "$sipp" || true
  local t1 ok failed retrans
  t1=$(cpu_ticks "$pid")
  ok=$(grep -E '^ *Successful call' "$work/sipp.out" | awk '{print $NF}' | tail -1)
  failed=$(grep -E '^ *Failed call' "$work/sipp.out" | awk '{print $NF}' | tail -1)
  retrans=$(python3 - "$work/stat.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
print(last[head.index("Retransmissions(C)")])
EOF
)
  local cpu_ms_per_join
  cpu_ms_per_join=$(python3 -c "print(f'{($t1 - $t0) / $hz * 1000 / max(1, ${ok:-0}):.3f}')")
  local server_retrans=- per_tx=- after=- dropped=- shed=-
  if [ "$name" = convoke ]; then
    server_retrans=$(python3 -c "print(int(float('$(metric convoke_sip_retransmissions_total)') - float('$x0')))")
    dropped=$(python3 -c "print(int(float('$(metric convoke_sip_queue_full_drops_total)') - float('$q0')))")
    shed=$(python3 -c "print(int(float('$(metric convoke_calls_shed_total)') - float('$s0')))")
    per_tx=$(python3 -c "print(f'{($peak_rss - $idle_rss) * 1024 / max(1, $peak_tx):.0f} B')")
    # Transactions linger 64*T1 = 32 s after the last call; then memory should be back.
    sleep 40
    after="$(rss_kib "$pid") KiB ($(transactions) tx)"
  fi
  printf '%-8s %6s/s %8s %8s %7s %7s %8s %7s %5s %9s %10s %9s %12s  %s\n' "$name" "$rate" "$calls" "${ok:-?}" "${failed:-?}" \
    "$retrans" "$server_retrans" "$dropped" "$shed" "$cpu_ms_per_join" "$peak_tx" "$peak_rss" "$per_tx" "$after"
  if [ "${failed:-1}" = 0 ] && [ "$retrans" = 0 ] && { [ "$server_retrans" = - ] || [ "$server_retrans" = 0 ]; }; then
    best[$name]=$rate
  fi
}

declare -A best=([convoke]=none [sipp-uas]=none)
header() {
  printf '%-8s %8s %8s %8s %7s %7s %8s %7s %5s %9s %10s %9s %12s  %s\n' target rate calls ok failed retrans srv-retr q-drops shed "ms CPU/join" "peak tx" "peak KiB" "B/tx" "after expiry"
}

echo load | "$bin" user add load --operator --data "$work/data" >/dev/null 2>&1
echo alice-pw | "$bin" user add alice --data "$work/data" >/dev/null 2>&1
taskset -c 0 "$bin" serve --public-metrics --max-calls-per-source 1000000 --max-live-per-account 10000 \
  --max-participants 1000000 --media-timeout 0 --media-threads 1 --sip 127.0.0.1:35061 --http 127.0.0.1:38081 \
  --media-ports 40000-47999 --data "$work/data" 2>"$work/server.log" &
server=$!; pids+=("$server")
for _ in $(seq 50); do curl -sf http://127.0.0.1:38081/api/v1/status >/dev/null && break; sleep 0.1; done
conf=$(curl -sf -u alice:alice-pw -H 'content-type: application/json' -d '{"name":"steady","pin":"424242","audio":"forward"}' \
  http://127.0.0.1:38081/api/v1/conferences | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 1
idle_rss=$(rss_kib "$server")
echo "convoke idle: $idle_rss KiB; steps of $step s; caller: SIPp on CPU 1, server on CPU 0"
header
for rate in $rates; do run_step convoke "$server" 127.0.0.1:35061 "$rate" "$conf"; done
kill -9 "$server"; wait "$server" 2>/dev/null || true
[ "${REFERENCE:-1}" = 0 ] && exit 0

# SIPp in the background exits non-zero from its launcher.
(cd "$work" && taskset -c 0 sipp -sn uas -p 35062 -nostdin -bg >/dev/null 2>&1) || true
sleep 0.5
uas=$(pgrep -f 'sipp -sn uas -p 35062' | head -1); pids+=("$uas")
for rate in $rates; do run_step sipp-uas "$uas" 127.0.0.1:35062 "$rate" "$conf"; done
echo "highest rate with no failed call and no retransmission: convoke ${best[convoke]}, SIPp UAS ${best[sipp-uas]}"
