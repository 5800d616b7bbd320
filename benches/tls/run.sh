#!/usr/bin/env bash
# uploadtask over TLS, side by side with curl (OpenSSL) and reqwest (rustls)
# against two TLS sinks in turn: nginx with TLS reading every body (one
# worker process, OpenSSL), then the benches' `tls_sink` (hyper on rustls,
# one thread). Each client is measured with /usr/bin/time (wall, CPU
# user+sys, peak RSS), median of RUNS, the two clients of a job taking
# turns (each goes first in every other round):
# - one 1 GiB upload from a file: uploadtask vs curl -F;
# - 20,000 uploads of 16 KiB with 1,000 in flight: `uploadtask load
#   --threads 1` vs reqwest (tokio, buffer_unordered(1000));
# - memory per in-flight TLS upload: peak RSS of `load -c 1000` over TLS
#   minus the same over plain http, divided by 1,000.
#
# The certificates are ECDSA P-256 (what certbot issues by default), or
# RSA 2048 with KEY=rsa: an RSA signature per handshake costs the one nginx
# worker about 1 ms, so 1,000 new connections make the sink the limit.
#
# nginx's worker and tls_sink run on CPU 0 and every client on CPU 1
# (`taskset`; tokio then starts one worker thread for reqwest), as if on two
# machines, so a client is measured against the sink and not against the
# scheduler's placement. PIN=0 leaves all unpinned.
#
#   cargo build --release -p uploadtask-cli -p uploadtask-benches && [KEY=rsa] bash benches/tls/run.sh [RUNS]
set -euo pipefail
runs=${1:-3}
key=${KEY:-ec}
case $key in
  ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
  rsa) newkey=(-newkey rsa:2048) ;;
  *) echo "KEY is ec or rsa"; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/uploadtask"
reqwest="$root/target/release/reqwest_peer"
tls_sink="$root/target/release/tls_sink"
for b in "$bin" "$reqwest" "$tls_sink"; do [ -x "$b" ] || { echo "build first: cargo build --release -p uploadtask-cli -p uploadtask-benches"; exit 2; }; done
# shellcheck source=../nginx.sh
source "$root/benches/nginx.sh"
nginx_setup tls
cd "$work"
# A CA and a leaf for localhost and 127.0.0.1.
openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req "${newkey[@]}" -nodes -subj /CN=localhost -keyout leaf.key -out leaf.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem 2>/dev/null
tls_port=18443 plain_port=18091
# TLS 1.3 as well (nginx 1.22 offers only up to 1.2 unless told).
nginx_start "  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:$tls_port ssl backlog=8192;
    ssl_certificate $work/leaf.pem;
    ssl_certificate_key $work/leaf.key;
    $NGINX_READ_BODY
  }
  server { listen 127.0.0.1:$plain_port backlog=8192; $NGINX_READ_BODY }"
tls="https://localhost:$tls_port/up"
client=() sink_cpu=()
if [ "${PIN:-1}" = 1 ]; then
  taskset -pc 0 "$(pgrep -f "nginx: worker" -P "$(cat "$work/nginx.pid")")" >/dev/null
  client=(taskset -c 1) sink_cpu=(taskset -c 0)
fi
plain="http://127.0.0.1:$plain_port/up"
head -c $((1 << 30)) /dev/zero > big.bin
# Written back now, not during the first client's runs (ours).
sync big.bin

# One run of a command, added to LABEL's runs as "wall cpu rss_kib".
once() {
  local label=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o t.txt "${client[@]}" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; cat t.txt >&2; }
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' t.txt >>"$label.runs"
}
# The median of LABEL's runs (by wall time), which are then forgotten.
median() { sort -n "$1.runs" | awk -v n="$runs" 'NR == int((n + 1) / 2) { print }'; rm -f "$1.runs"; }
# Median of RUNS runs of a command.
measure() {
  for _ in $(seq "$runs"); do once alone "$@"; done
  median alone
}
# RUNS rounds of the functions A and B, A first in odd rounds and B first in
# even ones: both clients meet the same phases of the machine and the sink
# (the sink's temporary-file stalls come and go for a few runs).
in_turn() {
  for i in $(seq "$runs"); do
    if ((i % 2)); then "$1"; "$2"; else "$2"; "$1"; fi
  done
}
row() { read -r wall cpu rss <<<"$2"; printf '  %-22s wall %7.3f s  cpu %7.3f s  rss %8.1f MiB\n' "$1" "$wall" "$cpu" "$(echo "$rss" | awk '{ print $1 / 1024 }')"; }

ours_big() { once ours "$bin" upload "$url" big.bin --cacert ca.pem --fail; }
curl_big() { once curl curl -sSf --cacert ca.pem -F file=@big.bin -o /dev/null "$url"; }
ours_many() { once ours "$bin" load "$url" -c 1000 -n 20000 --size 16384 --threads 1 --cacert ca.pem; }
reqwest_many() { REQWEST_CA=ca.pem once reqwest "$reqwest" many "$url" 16384 20000 1000; }

# The 1 GiB upload and the 20,000 uploads against the sink at $url.
jobs() {
  echo "One 1 GiB upload over TLS (median of $runs, the clients in turn):"
  in_turn ours_big curl_big
  row uploadtask "$(median ours)"
  row "curl (OpenSSL)" "$(median curl)"
  echo "20,000 uploads of 16 KiB over TLS, 1,000 in flight (median of $runs, the clients in turn):"
  in_turn ours_many reqwest_many
  row "uploadtask load" "$(median ours)"
  row "reqwest (rustls)" "$(median reqwest)"
}

echo "Certificates: $key"
echo "Sink: nginx (OpenSSL), which writes a large body to a temporary file"
url=$tls
jobs
# The benches' own sink (hyper on rustls, one thread, draining each body):
# a second TLS stack, which keeps nothing.
echo "Sink: tls_sink (hyper on rustls)"
coproc SINK { exec "${sink_cpu[@]}" "$tls_sink" leaf.pem leaf.key; }
read -r sink_addr <&"${SINK[0]}"
url="https://localhost:${sink_addr##*:}/up"
jobs
exec {SINK[1]}>&-
wait "$SINK_PID" || true
echo "Memory per in-flight TLS upload (peak RSS of load -c 1000, TLS minus plain):"
tls_rss=$(measure "$bin" load "$tls" -c 1000 -n 5000 --size 16384 --threads 1 --cacert ca.pem | awk '{ print $3 }')
plain_rss=$(measure "$bin" load "$plain" -c 1000 -n 5000 --size 16384 --threads 1 | awk '{ print $3 }')
awk -v t="$tls_rss" -v p="$plain_rss" 'BEGIN { printf "  TLS %.1f MiB, plain %.1f MiB: %.1f KiB more per in-flight upload\n", t / 1024, p / 1024, (t - p) / 1000 }'
