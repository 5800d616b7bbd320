#!/usr/bin/env bash
# One big file over several connections: 1 GiB to a shaped sink speaking
# enough S3 (s3_sink: each connection read at 20 MB/s, as a long path or a
# per-connection shaper allows), side by side, each measured with
# /usr/bin/time (wall, CPU user+sys, peak RSS):
# - one connection: `uploadtask upload -T` (a single PUT);
# - uploadtask's S3 multipart upload, 8 parts in flight (8 MiB parts);
# - boto3's transfer manager (s3transfer, the engine of `aws s3 cp`), 8
#   threads, 8 MiB parts.
# The parallel ones run RUNS times in turn (median); the single connection
# once (it takes about 54 s).
#
#   cargo build --release -p uploadtask-cli -p uploadtask-benches && bash benches/s3/run.sh [RUNS]
set -euo pipefail
runs=${1:-3}
rate=${RATE:-20000000}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/uploadtask"
sink="$root/target/release/s3_sink"
for b in "$bin" "$sink"; do [ -x "$b" ] || { echo "build first: cargo build --release -p uploadtask-cli -p uploadtask-benches"; exit 2; }; done
python3 -c "import boto3" 2>/dev/null || python3 -m pip install --quiet boto3
work=$(mktemp -d /tmp/uploadtask-s3.XXXXXX)
exec 3> >(RATE=$rate "$sink" > "$work/addr" 2> "$work/sink.log")
trap 'exec 3>&-; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/addr" ] && break; sleep 0.1; done
addr=$(head -1 "$work/addr")
cd "$work"
head -c $((1 << 30)) /dev/zero > big.bin
cat > boto.py <<PY
import boto3, sys
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="http://$addr", region_name="us-east-1",
                  aws_access_key_id="k", aws_secret_access_key="s",
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
mib = 1 << 20
s3.upload_file("big.bin", "b", sys.argv[1],
               Config=TransferConfig(multipart_threshold=8 * mib, multipart_chunksize=8 * mib, max_concurrency=8))
PY

once() {
  local label=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o t.txt "$@" >"$label.out" 2>&1 || { echo "failed: $*" >&2; tail -3 "$label.out" >&2; }
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' t.txt >>"$label.runs"
}
median() { sort -n "$1.runs" | awk -v n="$(wc -l < "$1.runs")" 'NR == int((n + 1) / 2) { print }'; }
row() { read -r wall cpu rss <<<"$2"; printf '  %-40s wall %7.2f s  cpu %6.2f s  rss %7.1f MiB\n' "$1" "$wall" "$cpu" "$(echo "$rss" | awk '{ print $1 / 1024 }')"; }

ours() { AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s once ours "$bin" upload s3://b/ours big.bin --endpoint "http://$addr" --parallel 8; }
boto() { once boto python3 boto.py boto; }
echo "1 GiB, each connection read at $rate bytes/s:"
for i in $(seq "$runs"); do
  if [ $((i % 2)) = 1 ]; then ours; boto; else boto; ours; fi
done
once single "$bin" upload -T big.bin "http://$addr/b/single"
row "one connection (uploadtask -T)" "$(median single)"
row "uploadtask s3://, 8 parts in flight" "$(median ours)"
row "boto3 transfer manager, 8 threads" "$(median boto)"
read -r single_wall _ <<<"$(median single)"
read -r ours_wall _ <<<"$(median ours)"
echo "  speed-up of 8 parts over one connection: $(awk -v a="$single_wall" -v b="$ours_wall" 'BEGIN { printf "%.1f", a / b }')x"
echo "  sink: $(grep -c '^complete' sink.log) multipart uploads completed, $(grep -c '^put' sink.log) single PUTs"
