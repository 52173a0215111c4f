#!/usr/bin/env bash
# Media-plane benchmarks of convoke against the reference forwarder (convoke-load forward: a
# bare recvmmsg/sendmmsg loop), measured by the same generator in the same run.
#
#   benches/media.sh [quick]
#
# The server under test (convoke with --media-threads 1, or the reference forwarder) is pinned
# to CPU 0, the generator to CPU 1. Prints:
#   1. fan-out 1:1, 1:4, 1:8 at 172 B and 1200 B: output packets/s, the server's CPU, output
#      packets per CPU-second and the ratio convoke/reference;
#   2. capacity: 5-party G.711 conferences (50 pps), loss and p99 one-way latency as
#      participants grow; the most participants within loss < 0.1 % and p99 < 10 ms;
#   3. added latency at half that load;
#   4. memory per participant and per idle conference;
#   5. pure SIP calls: convoke-load against SIPp's own UAC, both against SIPp's UAS.
# JSON of every run is kept in $OUT (default: target/bench-media).
set -euo pipefail
quick=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --features load --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
out=${OUT:-$root/target/bench-media}
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
secs=${SECS:-5}
[ "$quick" = quick ] && secs=2

echo load | "$bin/convoke" user add load --operator --data "$work/data" >/dev/null 2>&1
taskset -c 0 "$bin/convoke" serve --public-metrics --max-calls-per-source 100000 --max-live-per-account 10000 --max-participants 10000 --sip 127.0.0.1:35060 --http 127.0.0.1:38080 \
  --media-ports 40000-59999 --media-threads 1 --data "$work/data" 2>"$work/server.log" &
server=$!; pids+=("$server")
ref_port=39000
start_reference() {
  taskset -c 0 "$bin/convoke-load" forward --listen 127.0.0.1:$ref_port --group "$1" 2>/dev/null &
  reference=$!; pids+=("$reference")
  sleep 0.2
}
stop_reference() { kill "$reference"; wait "$reference" 2>/dev/null || true; ref_port=$((ref_port + 1)); }
for _ in $(seq 50); do curl -sf http://127.0.0.1:38080/api/v1/status >/dev/null && break; sleep 0.1; done

# run NAME TARGET(convoke|reference) ARGS... -> JSON in $out/NAME.json
run() {
  local name=$1 target=$2; shift 2
  if [ "$target" = convoke ]; then
    set -- --sip 127.0.0.1:35060 --http 127.0.0.1:38080 --server-pid "$server" "$@"
  else
    set -- --reference 127.0.0.1:$ref_port --server-pid "$reference" "$@"
  fi
  taskset -c 1 "$bin/convoke-load" conference --quiet --warmup 2 -d "$secs" --json "$out/$name.json" "$@" >/dev/null
}
field() { python3 -c "import json,sys; d=json.load(open('$out/$1.json')); print(eval('d' + sys.argv[1]))" "$2"; }

echo "## 1. Fan-out on one core (offered load the same for both; 20 conferences)"
printf '%-6s %6s %12s %12s %8s %8s %14s %14s %7s\n' fanout size "ref out pps" "cvk out pps" "ref cpu" "cvk cpu" "ref out/cpu-s" "cvk out/cpu-s" ratio
for size in 172 1200; do
  for group in 2 5 9; do
    # Offered output: 120 k packets/s.
    pps=$((120000 / (20 * group * (group - 1))))
    start_reference "$group"
    run "fanout-$group-$size-ref" reference -c 20 -p "$group" --pps "$pps" --size "$size"
    stop_reference
    run "fanout-$group-$size-cvk" convoke -c 20 -p "$group" --pps "$pps" --size "$size"
    r=fanout-$group-$size-ref; c=fanout-$group-$size-cvk
    ro=$(field "$r" "['media']['output_pps']"); co=$(field "$c" "['media']['output_pps']")
    rc=$(field "$r" "['server']['cores']"); cc=$(field "$c" "['server']['cores']")
    re=$(field "$r" "['server']['output_packets_per_cpu_second']"); ce=$(field "$c" "['server']['output_packets_per_cpu_second']")
    printf '1:%-4s %6s %12.0f %12.0f %8.2f %8.2f %14.0f %14.0f %7.2f\n' $((group - 1)) "$size" "$ro" "$co" "$rc" "$cc" "$re" "$ce" \
      "$(python3 -c "print($ce / $re if $re else 0)")"
  done
done
echo "(saturated: the most output packets/s each delivers when offered more than one core can carry)"
for group in 5 9; do
  pps=$((600000 / (20 * group * (group - 1))))
  start_reference "$group"
  run "saturate-$group-ref" reference -c 20 -p "$group" --pps "$pps"
  stop_reference
  run "saturate-$group-cvk" convoke -c 20 -p "$group" --pps "$pps"
  ro=$(field "saturate-$group-ref" "['media']['output_pps']"); co=$(field "saturate-$group-cvk" "['media']['output_pps']")
  rc=$(field "saturate-$group-ref" "['server']['cores']"); cc=$(field "saturate-$group-cvk" "['server']['cores']")
  printf '1:%-4s %6s %12.0f %12.0f %8.2f %8.2f  ratio %.2f\n' $((group - 1)) 172 "$ro" "$co" "$rc" "$cc" "$(python3 -c "print($co / $ro)")"
done

echo
echo "## 2. Capacity: 5-party G.711 conferences at 50 pps, one core"
printf '%-13s %10s %10s %10s %10s %12s\n' participants "ref loss%" "ref p99us" "cvk loss%" "cvk p99us" "cvk KiB/part"
best=0
steps="1000 1200 1300 1400 1500 1600"
[ "$quick" = quick ] && steps="1000 1300"
for n in $steps; do
  c=$((n / 5))
  start_reference 5
  run "capacity-$n-ref" reference -c "$c" -p 5
  stop_reference
  run "capacity-$n-cvk" convoke -c "$c" -p 5
  rl=$(field "capacity-$n-ref" "['media']['loss_percent']"); rp=$(field "capacity-$n-ref" "['media']['latency_us']['p99']")
  cl=$(field "capacity-$n-cvk" "['media']['loss_percent']"); cp=$(field "capacity-$n-cvk" "['media']['latency_us']['p99']")
  mem=$(field "capacity-$n-cvk" "['server']['rss_per_participant_kib']")
  printf '%-13s %10.3f %10s %10.3f %10s %12.1f\n' "$n" "$rl" "$rp" "$cl" "$cp" "$mem"
  if python3 -c "import sys; sys.exit(0 if $cl < 0.1 and $cp < 10000 else 1)"; then best=$n; fi
done
echo "most participants within loss < 0.1 % and p99 < 10 ms: $best"

echo
echo "## 3. Added latency at half load ($((best / 2)) participants)"
half=$(( (best / 2) / 5 ))
[ "$half" -lt 1 ] && half=1
start_reference 5
run half-ref reference -c "$half" -p 5
stop_reference
run half-cvk convoke -c "$half" -p 5
printf 'reference p50 %s us p99 %s us; convoke p50 %s us p99 %s us\n' \
  "$(field half-ref "['media']['latency_us']['p50']")" "$(field half-ref "['media']['latency_us']['p99']")" \
  "$(field half-cvk "['media']['latency_us']['p50']")" "$(field half-cvk "['media']['latency_us']['p99']")"

echo
echo "## 4. Memory"
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
before=$(rss)
idle=500
taskset -c 1 "$bin/convoke-load" conference --quiet --sip 127.0.0.1:35060 --http 127.0.0.1:38080 \
  -c "$idle" -p 2 --warmup 0 -d 0.2 >/dev/null
sleep 1
after=$(rss)
echo "after $idle conferences were joined and left (each keeps its worker and ports until --idle-park):"
echo "RSS $before -> $after KiB: $(( (after - before) / idle )) KiB per idle conference"
echo "per participant (RSS growth during the joins of the capacity runs): see the table above"

echo
echo "## 5. Pure SIP: 2000 calls at 400/s against SIPp's UAS (pinned to CPU 0)"
taskset -c 0 sipp -sn uas -p 35099 -nostdin >/dev/null 2>&1 &
uas=$!; pids+=("$uas")
sleep 0.3
(cd "$work" && taskset -c 1 sipp -sn uac -r 400 -m 2000 -l 500 -p 35098 -nostdin 127.0.0.1:35099 >sipp-uac.out 2>&1 || true)
grep -E "Successful call|Failed call" "$work/sipp-uac.out" | sed 's/^/SIPp uac: /' | tr -s ' '
taskset -c 1 "$bin/convoke-load" sip --quiet --target sip:service@127.0.0.1:35099 -m 2000 -r 400 -l 500 | sed 's/^/convoke-load: /'
