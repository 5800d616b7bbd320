#!/usr/bin/env bash
# Uploads lost to a server that closes connections at the end of each answer
# (or after IDLE_MS of idleness), uploadtask `load` and libcurl (the curl
# program: multi, --parallel) side by side on the same sink, ROUNDS times.
#   benches/closing/run.sh [ROUNDS]      IDLE_MS=N for the idle-close sink,
#                                        KEEP_ALIVE=1 to announce its timeout
# Needs: a release build (cargo build --release -p uploadtask-cli
# -p uploadtask-benches) and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
total=2000
work=$(mktemp -d)
trap 'rm -rf "$work"; kill %1 2>/dev/null || true' EXIT
head -c 1024 /dev/urandom > "$work/f.bin"
coproc SINK { target/release/closing_sink; }
read -r addr <&"${SINK[0]}"
url="http://$addr/up"
for i in $(seq 1 "$total"); do echo "url = \"$url\""; echo "form = \"file=@$work/f.bin\""; echo "output = \"/dev/null\""; done > "$work/curl.cfg"
echo "sink $addr (IDLE_MS=${IDLE_MS:-none} KEEP_ALIVE=${KEEP_ALIVE:-0}), $total uploads of 1 KiB, 16 in flight"
for round in $(seq 1 "$rounds"); do
  ours=$(target/release/uploadtask load "$url" -c 16 -n "$total" --size 1k --threads 1 --json || true)
  failed=$(echo "$ours" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["failures"], r["resent"])')
  curl_failed=$(curl --parallel --parallel-max 16 -s -w '%{http_code}\n' -K "$work/curl.cfg" 2>/dev/null \
    | grep -vc '^200$' || true)
  echo "round $round: uploadtask failures/resent: $failed; curl failures: $curl_failed"
done
