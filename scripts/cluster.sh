#!/usr/bin/env bash
# A local scale-out layout: one Redis, one process with the scheduler and API
# roles, and two worker-only processes, all sharing the demo configuration;
# plus the reference checker service (cmd/checkd-sandbox) and a datasource
# "sandbox-http" checked through it over the HTTP checker protocol
# (docs/checkers.md), with a demo company of its connections.
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
go build -o "$CLUSTER_DIR/checkd-sandbox" ./cmd/checkd-sandbox

# The checker service, on loopback in plain http (the development switch),
# and the datasource pointing at it, added to a copy of the configuration.
checker_port=$(free_port)
export CHECKD_DATASOURCE_SANDBOX_HTTP_SECRET=${CHECKD_DATASOURCE_SANDBOX_HTTP_SECRET:-whsec_$(openssl rand -base64 32)}
export CHECKD_CHECKER_ALLOW_HTTP=true
CHECKD_SANDBOX_SECRET=$CHECKD_DATASOURCE_SANDBOX_HTTP_SECRET "$CLUSTER_DIR/checkd-sandbox" \
	-addr "127.0.0.1:$checker_port" -latency 200ms >"$CLUSTER_DIR/checkd-sandbox.log" 2>&1 &
pids+=($!)
if grep -q '^datasources:' "$CHECKD_CONFIG"; then
	echo "$CHECKD_CONFIG has a datasources section: the sandbox-http datasource is not added" >&2
else
	{ cat "$CHECKD_CONFIG"; printf '\ndatasources:\n  sandbox-http:\n    checker: http\n    url: http://127.0.0.1:%s/check\n' "$checker_port"; } \
		>"$CLUSTER_DIR/checkd.yaml"
	export CHECKD_CONFIG=$CLUSTER_DIR/checkd.yaml
fi

CHECKD_ROLES=scheduler,api CHECKD_HTTP_ADDR=$http "$CLUSTER_DIR/checkd" >"$CLUSTER_DIR/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://$http/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

for i in 1 2; do
	m=$(free_port)
	CHECKD_ROLES=worker CHECKD_METRICS_ADDR=127.0.0.1:$m "$CLUSTER_DIR/checkd" >"$CLUSTER_DIR/worker$i.log" 2>&1 &
	pids+=($!)
	echo "worker $i: metrics and probes on http://127.0.0.1:$m (/metrics, /healthz, /readyz)"
done

# A company whose connections are checked through the checker service.
seed_http() {
	local api="http://$http/v1" key=${CHECKD_API_KEYS%%,*} co user
	co=$(curl -fs -H "X-API-Key: $key" -H 'Content-Type: application/json' -d '{"name":"Checker Service Demo"}' \
		"$api/company" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
	[ -n "$co" ] || return 1
	for user in user_good user_good user_good user_nodocs user_accounts_3 error_PASSWORD_INCORRECT error_WEBSITE_DOWN; do
		curl -fs -o /dev/null -H "X-API-Key: $key" -H 'Content-Type: application/json' \
			-d "{\"datasource\":\"sandbox-http\",\"name\":\"$user\",\"credentials\":{\"username\":\"$user\",\"password\":\"demo-password\"}}" \
			"$api/connection/company/$co" || return 1
	done
}
# After the demo seeding (readyz answers once it is done), which seeds an
# empty store only.
for _ in $(seq 300); do curl -fs "http://$http/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
if grep -q 'sandbox-http:' "$CHECKD_CONFIG"; then
	seed_http || echo "could not create the sandbox-http demo connections (see $CLUSTER_DIR/api.log)" >&2
fi

cat <<INFO
checkd cluster up (logs in $CLUSTER_DIR):
  redis      $CHECKD_REDIS_URL
  checker    http://127.0.0.1:$checker_port/check   (checkd-sandbox: datasource sandbox-http)
  api+sched  http://$http   (X-API-Key: $CHECKD_API_KEYS)
  dashboard  http://$http/monitoring/   (user admin, password = the API key)
  checkctl   CHECKD_URL=http://$http CHECKD_API_KEY=$CHECKD_API_KEYS $CLUSTER_DIR/checkctl companies list
Ctrl-C to stop.
INFO
wait -n "${pids[@]}"
echo "a process exited; stopping the rest" >&2
