#!/usr/bin/env bash
# A local scale-out layout: one Redis, one process with the scheduler and API
# roles, and two worker-only processes, all sharing the demo configuration.
#
#   bash scripts/cluster.sh          # or: make cluster
#
# Uses CHECKD_REDIS_URL when set, else starts a throwaway redis-server on a
# free loopback port. Ctrl-C stops everything. Logs go to $CLUSTER_DIR
# (printed at start).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_DIR=${CLUSTER_DIR:-$(mktemp -d -t checkd-cluster.XXXXXX)}
pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	echo "stopped; logs kept in $CLUSTER_DIR"
}
trap cleanup EXIT INT TERM

command -v redis-server >/dev/null || [ -n "${CHECKD_REDIS_URL:-}" ] || {
	echo "redis-server is not installed: apt-get update && apt-get install -y redis-server (or set CHECKD_REDIS_URL)" >&2
	exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ -z "${CHECKD_REDIS_URL:-}" ]; then
	port=$(free_port)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$CLUSTER_DIR" \
		>"$CLUSTER_DIR/redis.log" 2>&1 &
	pids+=($!)
	export CHECKD_REDIS_URL="redis://127.0.0.1:$port/0"
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# One key set for every process: they share the Redis and its credentials.
export CHECKD_ENCRYPTION_KEY=${CHECKD_ENCRYPTION_KEY:-$(openssl rand -hex 32)}
export CHECKD_API_KEYS=${CHECKD_API_KEYS:-$(openssl rand -hex 16)}
export CHECKD_CONFIG=${CHECKD_CONFIG:-configs/demo.yaml}
http=${CHECKD_HTTP_ADDR:-127.0.0.1:8080}

go build -o "$CLUSTER_DIR/checkd" ./cmd/checkd
go build -o "$CLUSTER_DIR/checkctl" ./cmd/checkctl

CHECKD_ROLES=scheduler,api CHECKD_HTTP_ADDR=$http "$CLUSTER_DIR/checkd" >"$CLUSTER_DIR/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://$http/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

for i in 1 2; do
	m=$(free_port)
	CHECKD_ROLES=worker CHECKD_METRICS_ADDR=127.0.0.1:$m "$CLUSTER_DIR/checkd" >"$CLUSTER_DIR/worker$i.log" 2>&1 &
	pids+=($!)
	echo "worker $i: metrics and probes on http://127.0.0.1:$m (/metrics, /healthz, /readyz)"
done

cat <<INFO
checkd cluster up (logs in $CLUSTER_DIR):
  redis      $CHECKD_REDIS_URL
  api+sched  http://$http   (X-API-Key: $CHECKD_API_KEYS)
  dashboard  http://$http/monitoring/   (user admin, password = the API key)
  checkctl   CHECKD_URL=http://$http CHECKD_API_KEY=$CHECKD_API_KEYS $CLUSTER_DIR/checkctl companies list
Ctrl-C to stop.
INFO
wait -n "${pids[@]}"
echo "a process exited; stopping the rest" >&2
