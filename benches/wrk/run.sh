#!/usr/bin/env bash
# Side by side against nginx reading every body (one worker process):
# `uploadtask load` and `wrk` replaying a prebuilt multipart body on
# keep-alive connections (the limit of the sink: no files, no framing, no
# progress, no callbacks). Shapes: 16 KiB x 1,000 in flight and 1 KiB x 64,
# one client thread each, then two (wrk -t2, load --threads 2). Each shape
# runs ROUNDS times, wrk then load, and prints every round's ratio and their
# median (this machine's speed drifts by ±10% within minutes).
#
# With one client thread, nginx's worker runs on CPU 0 and the client on
# CPU 1 (`taskset`), as if on two machines: unpinned, the scheduler puts
# client and sink on one core now and then, and a round measures that
# instead (ratios from 0.79 to 1.00 x in eleven unpinned rounds). PIN=0
# leaves both unpinned. Two client threads always run unpinned.
#
#   cargo build --release -p uploadtask-cli && bash benches/wrk/run.sh [SECONDS] [ROUNDS]
#   SHAPES="16384:1000:1" PIN=0 bash benches/wrk/run.sh 5 7   # one shape, unpinned
#
# Needs wrk, nginx and the echo module: the script installs them with
# apt-get when they are missing (as root).
set -euo pipefail
seconds=${1:-5}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/uploadtask"
[ -x "$bin" ] || { echo "build first: cargo build --release -p uploadtask-cli"; exit 2; }
# shellcheck source=../nginx.sh
source "$root/benches/nginx.sh"
nginx_setup wrk wrk
port=18089
nginx_start "  server { listen 127.0.0.1:$port backlog=8192 reuseport; $NGINX_READ_BODY }"
url="http://127.0.0.1:$port/up"
worker=$(pgrep -f "nginx: worker" -P "$(cat "$work/nginx.pid")")
pin=${PIN:-1}

# on_cpus THREADS COMMAND...: runs COMMAND on CPU 1 with nginx on CPU 0 when
# pinning one client thread, else anywhere.
on_cpus() {
  local threads=$1
  shift
  if [ "$pin" = 1 ] && [ "$threads" = 1 ]; then
    taskset -pc 0 "$worker" >/dev/null
    taskset -c 1 "$@"
  else
    taskset -pc 0-"$(($(nproc) - 1))" "$worker" >/dev/null
    "$@"
  fi
}

# One multipart body as the engine frames it (field "file", filename load.bin).
body() {
  local size=$1 out=$2 boundary=uploadtask-wrk-0123456789abcdef
  { printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="load.bin"\r\nContent-Type: application/octet-stream\r\n\r\n' "$boundary"
    head -c "$size" /dev/zero | tr '\0' 'x'
    printf -- '\r\n--%s--\r\n' "$boundary"; } > "$out"
  cat > "$out.lua" <<LUA
local f = io.open("$out", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=$boundary"
LUA
}

shape() {
  local size=$1 conns=$2 threads=$3 ratios=()
  body "$size" "$work/body-$size"
  local wrk_rate load_json load_rate total
  for _ in $(seq "$rounds"); do
    wrk_rate=$(on_cpus "$threads" wrk -t"$threads" -c"$conns" -d"${seconds}s" -s "$work/body-$size.lua" "$url" | awk '/Requests\/sec/ {print $2}')
    total=$(awk -v r="$wrk_rate" -v s="$seconds" 'BEGIN { printf "%d", r * s }')
    load_json=$(on_cpus "$threads" "$bin" load "$url" -c "$conns" -n "$total" --size "$size" --threads "$threads" --json)
    load_rate=$(echo "$load_json" | sed -E 's/.*"successesPerSec":([0-9.]+).*/\1/')
    ratios+=("$(awk -v w="$wrk_rate" -v l="$load_rate" 'BEGIN { printf "%.2f", l / w }')")
    awk -v s="$size" -v c="$conns" -v t="$threads" -v w="$wrk_rate" -v l="$load_rate" 'BEGIN {
      printf "%6d B x %4d in flight, %d thread(s): wrk %9.0f/s  load %9.0f/s  = %.2f x wrk\n", s, c, t, w, l, l / w }'
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v s="$size" -v c="$conns" -v t="$threads" '{ r[NR] = $1 } END {
    printf "%6d B x %4d in flight, %d thread(s): median %.2f x wrk over %d rounds\n", s, c, t, r[int((NR + 1) / 2)], NR }'
}

# SHAPES="SIZE:IN_FLIGHT:THREADS ..." runs only those.
for s in ${SHAPES:-16384:1000:1 1024:64:1 16384:1000:2 1024:64:2}; do
  IFS=: read -r size conns threads <<<"$s"
  shape "$size" "$conns" "$threads"
done
