#!/usr/bin/env bash
# HTTP/2 side by side against nginx with `http2` (one worker process, every
# body read), each client measured with /usr/bin/time (wall, CPU user+sys,
# peak RSS), median of RUNS, the clients taking turns:
# - 20,000 uploads of 16 KiB with 1,000 in flight over TLS (ALPN h2, one
#   connection: nginx takes 1,000 streams): `uploadtask load --threads 1`,
#   h2load (nghttp2: the limit of the sink for this job; raw bodies of
#   16 KiB, where the others send a 16 KiB file in a form), the curl program
#   (libcurl multi, --parallel --http2: multiplexed) and reqwest (hyper's
#   HTTP/2, tokio, buffer_unordered(1000));
# - one 1 GiB upload over TLS with a 1 MiB stream window: uploadtask over
#   HTTP/2, uploadtask over HTTP/1.1 (--http1.1) to the same nginx, and
#   curl --http2;
# - memory per in-flight upload: peak RSS of `load -c 1000` minus that of
#   `load -c 10`, divided by 990, over h2c (prior knowledge) and HTTP/1.1
#   to the same nginx over plain TCP.
#
# nginx's worker runs on CPU 0 and every client on CPU 1 (taskset), as in
# benches/tls/run.sh; PIN=0 leaves all unpinned.
#
#   cargo build --release -p uploadtask-cli -p uploadtask-benches && bash benches/h2/run.sh [RUNS]
set -euo pipefail
runs=${1:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/uploadtask"
reqwest="$root/target/release/reqwest_peer"
for b in "$bin" "$reqwest"; do [ -x "$b" ] || { echo "build first: cargo build --release -p uploadtask-cli -p uploadtask-benches"; exit 2; }; done
# shellcheck source=../nginx.sh
source "$root/benches/nginx.sh"
nginx_setup h2 h2load
command -v h2load >/dev/null || apt-get install -y nghttp2-client >/dev/null
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench-ca \
  -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost -keyout leaf.key -out leaf.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem 2>/dev/null
tls_port=18444 h2c_port=18092 plain_port=18093
nginx_start "  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  http2_max_concurrent_streams 1000;
  http2_body_preread_size 1m;
  server {
    listen 127.0.0.1:$tls_port ssl http2 backlog=8192;
    ssl_certificate $work/leaf.pem;
    ssl_certificate_key $work/leaf.key;
    $NGINX_READ_BODY
  }
  server { listen 127.0.0.1:$h2c_port http2 backlog=8192; $NGINX_READ_BODY }
  server { listen 127.0.0.1:$plain_port backlog=8192; $NGINX_READ_BODY }"
client=()
if [ "${PIN:-1}" = 1 ]; then
  taskset -pc 0 "$(pgrep -f "nginx: worker" -P "$(cat "$work/nginx.pid")")" >/dev/null
  client=(taskset -c 1)
fi
tls="https://localhost:$tls_port/up"
head -c 16384 /dev/urandom > f16k.bin
head -c $((1 << 30)) /dev/zero > big.bin
sync big.bin
# One transfer per block, `next` between them; no `Expect: 100-continue`
# (curl 7.88 waits up to 1 s for it on bodies over 1 KiB; we send it only
# above 1 MiB).
for i in $(seq 20000); do
  [ "$i" = 1 ] || echo next
  echo "url = \"$tls\""; echo "form = \"file=@$work/f16k.bin\""; echo "output = \"/dev/null\""; echo 'header = "Expect:"'
done > curl.cfg

once() {
  local label=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o t.txt "${client[@]}" "$@" >"$label.out" 2>/dev/null || { echo "failed: $*" >&2; tail -3 "$label.out" >&2; }
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' t.txt >>"$label.runs"
}
median() { sort -n "$1.runs" | awk -v n="$runs" 'NR == int((n + 1) / 2) { print }'; rm -f "$1.runs"; }
row() { read -r wall cpu rss <<<"$2"; printf '  %-30s wall %7.3f s  cpu %7.3f s  rss %8.1f MiB\n' "$1" "$wall" "$cpu" "$(echo "$rss" | awk '{ print $1 / 1024 }')"; }
# Every client once per round, the order turned each round.
rounds() {
  local fns=("$@") n=$#
  for i in $(seq "$runs"); do
    for j in $(seq 0 $((n - 1))); do "${fns[$(((i + j) % n))]}"; done
  done
}

ours_many() { once ours "$bin" load "$tls" -c 1000 -n 20000 --size 16384 --threads 1 --cacert ca.pem; }
h2load_many() { once h2load h2load -n 20000 -c 1 -m 1000 -d f16k.bin "$tls"; }
# curl takes at most 300 transfers at once (--parallel-max's ceiling).
curl_many() { once curl curl -s --http2 --cacert ca.pem --parallel --parallel-max 300 -K curl.cfg; }
reqwest_many() { REQWEST_CA=ca.pem once reqwest "$reqwest" many "$tls" 16384 20000 1000; }
echo "20,000 uploads of 16 KiB over TLS (ALPN h2), 1,000 in flight (median of $runs, the clients in turn):"
# curl 7.88 (Debian 12) took 13 minutes for this job here (batches of 300
# stalling for seconds): it runs only with CURL=1.
if [ "${CURL:-0}" = 1 ]; then rounds ours_many h2load_many curl_many reqwest_many; else rounds ours_many h2load_many reqwest_many; fi
row "uploadtask load" "$(median ours)"
grep -E "Connections|Failures" ours.out | sed 's/^/      /'
row "h2load (the sink's limit)" "$(median h2load)"
grep -E "^requests:" h2load.out | sed 's/^/      /'
[ "${CURL:-0}" = 1 ] && row "curl --parallel --http2 (300)" "$(median curl)"
row "reqwest (HTTP/2)" "$(median reqwest)"

ours_big() { once ours "$bin" upload "$tls" big.bin --cacert ca.pem --fail; }
ours_big_h1() { once ours_h1 "$bin" upload "$tls" big.bin --cacert ca.pem --fail --http1.1; }
curl_big() { once curl curl -sSf --http2 --cacert ca.pem -H Expect: -F file=@big.bin -o /dev/null "$tls"; }
echo "One 1 GiB upload over TLS, 1 MiB stream window (median of $runs, in turn):"
rounds ours_big ours_big_h1 curl_big
row "uploadtask HTTP/2" "$(median ours)"
row "uploadtask HTTP/1.1" "$(median ours_h1)"
row "curl --http2" "$(median curl)"

echo "Memory per in-flight upload, (RSS at -c 1000 - RSS at -c 10) / 990 (median of $runs):"
for mode in h2c http1; do
  if [ $mode = h2c ]; then url="http://127.0.0.1:$h2c_port/up" flag=--http2-prior-knowledge; else url="http://127.0.0.1:$plain_port/up" flag=--http1.1; fi
  big_c() { once big "$bin" load "$url" -c 1000 -n 20000 --size 16384 --threads 1 $flag; }
  small_c() { once small "$bin" load "$url" -c 10 -n 20000 --size 16384 --threads 1 $flag; }
  rounds big_c small_c
  read -r _ _ big_rss <<<"$(median big)"
  read -r _ _ small_rss <<<"$(median small)"
  echo "  $mode: $(( (big_rss - small_rss) * 1024 / 990 )) bytes per upload (RSS $small_rss KiB at -c 10, $big_rss KiB at -c 1000)"
done
