# Sourced by benches/wrk/run.sh and benches/tls/run.sh: nginx with one
# worker process, reading every body (the echo module), as the sink that
# every client in a comparison uploads to.

# nginx_setup TAG [COMMAND...]: installs nginx, its echo module and the
# packages named COMMAND when missing (apt-get, as root), then makes $work,
# removed with nginx stopped when the script exits.
nginx_setup() {
  local tag=$1 missing=
  shift
  for command in nginx "$@"; do command -v "$command" >/dev/null || missing=1; done
  [ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing=1
  if [ -n "$missing" ]; then apt-get install -y nginx libnginx-mod-http-echo "$@" >/dev/null; fi
  work=$(mktemp -d "/tmp/uploadtask-$tag.XXXXXX")
  trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
  # nginx workers (www-data) write large bodies under it.
  chmod 755 "$work"
}

# nginx_start SERVERS: starts nginx with the http-level directives SERVERS
# (server blocks answering each upload with `ok` once its body was read).
nginx_start() {
  cat > "$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_buffer_size 1m;
  client_body_temp_path $work/body;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
$1
}
CONF
  nginx -p "$work" -c "$work/nginx.conf"
  sleep 0.5
}

# The location every server block uses.
NGINX_READ_BODY='location / { echo_read_request_body; echo "ok"; }'
