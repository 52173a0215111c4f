#!/usr/bin/env bash
# The largest conference one core can mix: one conference of N G.711 participants, all
# talking (the generator's payload is a tone), all hearing the mix (SIP phones' default), the
# server pinned to CPU 0 with --media-threads 1, the generator on CPU 1. Prints the server's CPU,
# the mixed packets each participant received per second (50 when every frame arrives), and the
# mixer frames that ran more than 20 ms behind their schedule.
#   benches/mix.sh [N ...]        (default: 100 200 400 800 1200)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --features load --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
echo load | "$bin/convoke" user add load --operator --data "$work/data" >/dev/null 2>&1
taskset -c 0 "$bin/convoke" serve --public-metrics --max-calls-per-source 100000 --max-live-per-account 10000 --max-participants 10000 --sip 127.0.0.1:35060 --http 127.0.0.1:38080 \
  --media-ports 40000-47999 --media-threads 1 --data "$work/data" 2>"$work/server.log" &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:38080/api/v1/status >/dev/null && break; sleep 0.1; done
printf '%-13s %9s %14s %12s %10s\n' participants "cpu" "cpu/part %" "mix pps/part" "late %"
for n in "${@:-100 200 400 800 1200}"; do
  for size in $n; do
    taskset -c 1 "$bin/convoke-load" conference --quiet --sip 127.0.0.1:35060 --http 127.0.0.1:38080 \
      --user load --password load --server-pid "$server" -c 1 -p "$size" --audio mix \
      --join-window 400 --warmup 2 -d 5 --json "$work/r.json" >/dev/null
    curl -sf -u load:load http://127.0.0.1:38080/api/v1/workers >"$work/w.json"
    python3 - "$work/r.json" "$work/w.json" "$size" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); w = json.load(open(sys.argv[2])); n = int(sys.argv[3])
conf = r["joins"]["conferences"][0]
worker = next(s for s in w["serving"] if s["conference"] == conf)
p = worker["packets"]
late = 100.0 * p["mix_late"] / max(p["mix_frames"], 1)
cores = r["server"]["cores"]
print(f'{n:<13} {cores:9.2f} {100 * cores / n:14.3f} {r["media"]["mixed_pps_per_participant"]:12.1f} {late:10.2f}')
PY
  done
done
