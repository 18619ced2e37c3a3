#!/usr/bin/env bash
# A local scale-out layout: one Redis, one process with the scheduler and API
# roles, and two worker-only processes, all sharing the demo configuration;
# and beside them the reference checker service (cmd/checkd-sandbox) with a
# datasource "sandbox-http" checked through it over the HTTP checker
# protocol (docs/checkers.md), and a company of such connections.
#
#   bash scripts/cluster.sh          # or: make cluster
#
# Ports: the API listens on CHECKD_HTTP_ADDR (default 127.0.0.1:8080, or a
# free port when 8080 is taken), the workers' /metrics and probes on
# CLUSTER_WORKER_PORTS (two ports, default free ones), and Redis on
# CLUSTER_REDIS_PORT (default a free port) unless CHECKD_REDIS_URL names a
# Redis to use, the checker service on CLUSTER_CHECKER_PORT (default a free
# port). A port asked for and taken is refused, naming it. The script
# waits until every process is ready (/readyz), then prints the URLs and the
# API key. Logs go to $CLUSTER_DIR (printed).
#
# Ctrl-C (or a SIGTERM to the script) stops it: one SIGTERM to each checkd
# process, which stop gracefully, then the checker service (the workers'
# last checks need it) and Redis once they have all exited. Redis, the
# checker service and the checkd processes run in sessions of their own
# (setsid), so the
# terminal's Ctrl-C reaches this script only: Redis never goes away under
# processes still stopping, and each checkd gets one signal (a second makes
# it exit at once). Exit status: 0 after a stop on request; 1 when something
# failed to start, a process exited by itself, or a stop failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/net.sh

CLUSTER_DIR=${CLUSTER_DIR:-$(mktemp -d -t checkd-cluster.XXXXXX)}
mkdir -p "$CLUSTER_DIR"
# How long a process may take to become ready, and to stop (above checkd's
# own 45 s bound on a graceful stop).
ready_timeout=${CLUSTER_READY_TIMEOUT:-120}
stop_timeout=60

say() { echo "cluster: $*"; }

checkd_pids=() # the checkd processes, in start order
redis_pid=""
checker_pid=""

# wait_gone waits up to $1 seconds for the processes $2... to exit.
wait_gone() {
	local deadline=$((SECONDS + $1)) p alive
	shift
	while :; do
		alive=""
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && return 0
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# stop stops the checkd processes, waits for them, then stops Redis, and
# exits with $1 (or 1 when a stop failed).
stop() {
	local code=$1 p rc
	trap - EXIT
	trap 'say "already stopping: waiting for the processes to finish"' INT TERM
	if [ "${#checkd_pids[@]}" -gt 0 ]; then
		say "stopping the checkd processes (SIGTERM to ${checkd_pids[*]})"
		kill -TERM "${checkd_pids[@]}" 2>/dev/null || true
		if ! wait_gone "$stop_timeout" "${checkd_pids[@]}"; then
			say "a checkd process did not stop within ${stop_timeout}s: killing it"
			kill -KILL "${checkd_pids[@]}" 2>/dev/null || true
			code=1
		fi
		for p in "${checkd_pids[@]}"; do
			rc=0
			wait "$p" 2>/dev/null || rc=$?
			if [ "$rc" -ne 0 ] && [ "$rc" -ne 127 ]; then # 127: reaped already (it exited by itself)
				say "checkd process $p exited with status $rc (see its log)"
				code=1
			fi
		done
		say "checkd processes stopped"
	fi
	if [ -n "$checker_pid" ]; then
		say "stopping the checker service"
		kill -TERM "$checker_pid" 2>/dev/null || true
		wait_gone "$stop_timeout" "$checker_pid" || { kill -KILL "$checker_pid" 2>/dev/null || true; code=1; }
		wait "$checker_pid" 2>/dev/null || true
	fi
	if [ -n "$redis_pid" ]; then
		say "stopping Redis"
		kill -TERM "$redis_pid" 2>/dev/null || true
		wait_gone "$stop_timeout" "$redis_pid" || { kill -KILL "$redis_pid" 2>/dev/null || true; code=1; }
		wait "$redis_pid" 2>/dev/null || true
	fi
	if [ "${#checkd_pids[@]}" -gt 0 ] || [ -n "$redis_pid" ]; then
		say "stopped; logs in $CLUSTER_DIR"
	fi
	exit "$code"
}
trap 'stop 1' EXIT
trap 'stop 0' INT TERM

# fail reports a problem and stops what was started.
fail() {
	echo "cluster: $*" >&2
	stop 1
}

# want_port checks a port asked for ($2, named by $1) is free.
want_port() {
	[[ "$2" =~ ^[0-9]+$ ]] || fail "$1: $2 is not a port number"
	if port_open "$2"; then
		fail "$1: port $2 is taken by another process; choose another port"
	fi
}

command -v setsid >/dev/null || fail "setsid is missing (util-linux): it keeps Ctrl-C from reaching Redis before checkd has stopped"
if [ -z "${CHECKD_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
	fail "redis-server is not installed: apt-get update && apt-get install -y redis-server (or set CHECKD_REDIS_URL)"
fi

# The ports, each checked before anything starts.
used=()
if [ -n "${CHECKD_HTTP_ADDR:-}" ]; then
	http=$CHECKD_HTTP_ADDR
	want_port CHECKD_HTTP_ADDR "${http##*:}"
elif port_open 8080; then
	http=127.0.0.1:$(free_port)
	say "port 8080 is taken by another process: the API uses ${http##*:} (set CHECKD_HTTP_ADDR to choose)"
else
	http=127.0.0.1:8080
fi
used+=("${http##*:}")
read -r -a worker_ports <<<"${CLUSTER_WORKER_PORTS:-}"
if [ "${#worker_ports[@]}" -eq 0 ]; then
	for _ in 1 2; do worker_ports+=("$(free_port "${used[@]}" "${worker_ports[@]}")"); done
elif [ "${#worker_ports[@]}" -ne 2 ]; then
	fail "CLUSTER_WORKER_PORTS needs two ports, one per worker (got: ${CLUSTER_WORKER_PORTS})"
else
	for p in "${worker_ports[@]}"; do want_port CLUSTER_WORKER_PORTS "$p"; done
fi
used+=("${worker_ports[@]}")
if [ -z "${CHECKD_REDIS_URL:-}" ]; then
	if [ -n "${CLUSTER_REDIS_PORT:-}" ]; then
		redis_port=$CLUSTER_REDIS_PORT
		want_port CLUSTER_REDIS_PORT "$redis_port"
	else
		redis_port=$(free_port "${used[@]}")
	fi
	used+=("$redis_port")
fi
if [ -n "${CLUSTER_CHECKER_PORT:-}" ]; then
	checker_port=$CLUSTER_CHECKER_PORT
	want_port CLUSTER_CHECKER_PORT "$checker_port"
else
	checker_port=$(free_port "${used[@]}")
fi

say "building checkd, checkctl and checkd-sandbox into $CLUSTER_DIR"
go build -o "$CLUSTER_DIR/checkd" ./cmd/checkd
go build -o "$CLUSTER_DIR/checkctl" ./cmd/checkctl
go build -o "$CLUSTER_DIR/checkd-sandbox" ./cmd/checkd-sandbox

if [ -z "${CHECKD_REDIS_URL:-}" ]; then
	setsid redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$CLUSTER_DIR" \
		>"$CLUSTER_DIR/redis.log" 2>&1 </dev/null &
	redis_pid=$!
	export CHECKD_REDIS_URL="redis://127.0.0.1:$redis_port/0"
	for _ in $(seq 100); do
		redis_ready "$redis_port" && break
		kill -0 "$redis_pid" 2>/dev/null || fail "redis-server exited at start; its log: $CLUSTER_DIR/redis.log"
		sleep 0.1
	done
	redis_ready "$redis_port" || fail "redis-server does not answer on port $redis_port; its log: $CLUSTER_DIR/redis.log"
fi

# One key set for every process: they share the Redis and its credentials.
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export CHECKD_ENCRYPTION_KEY=${CHECKD_ENCRYPTION_KEY:-$(random_hex 32)}
export CHECKD_API_KEYS=${CHECKD_API_KEYS:-$(random_hex 16)}
export CHECKD_CONFIG=${CHECKD_CONFIG:-configs/demo.yaml}
key=${CHECKD_API_KEYS%%,*}

# The checker service, serving the sandbox over the HTTP checker protocol on
# loopback in plain http (the development switch), and the datasource
# pointing at it, added to a copy of the configuration.
export CHECKD_DATASOURCE_SANDBOX_HTTP_SECRET=${CHECKD_DATASOURCE_SANDBOX_HTTP_SECRET:-whsec_$(head -c 32 /dev/urandom | base64 -w0)}
export CHECKD_CHECKER_ALLOW_HTTP=true
CHECKD_SANDBOX_SECRET=$CHECKD_DATASOURCE_SANDBOX_HTTP_SECRET setsid "$CLUSTER_DIR/checkd-sandbox" \
	-addr "127.0.0.1:$checker_port" -latency 200ms >"$CLUSTER_DIR/checkd-sandbox.log" 2>&1 </dev/null &
checker_pid=$!
for _ in $(seq 100); do
	http_ok "127.0.0.1:$checker_port" /healthz && break
	kill -0 "$checker_pid" 2>/dev/null || fail "checkd-sandbox exited at start; its log: $CLUSTER_DIR/checkd-sandbox.log"
	sleep 0.1
done
http_ok "127.0.0.1:$checker_port" /healthz || fail "checkd-sandbox does not answer on port $checker_port; its log: $CLUSTER_DIR/checkd-sandbox.log"
say "checker service listening on port $checker_port (pid $checker_pid)"
http_datasource=""
if grep -q '^datasources:' "$CHECKD_CONFIG"; then
	say "$CHECKD_CONFIG has a datasources section: the sandbox-http datasource is not added"
else
	{ cat "$CHECKD_CONFIG"; printf '\ndatasources:\n  sandbox-http:\n    checker: http\n    url: http://127.0.0.1:%s/check\n' "$checker_port"; } \
		>"$CLUSTER_DIR/checkd.yaml"
	export CHECKD_CONFIG=$CLUSTER_DIR/checkd.yaml
	http_datasource=sandbox-http
fi

# start runs one checkd process in a session of its own; $1 names its log.
# (setsid does not fork here, so $! is checkd's PID: a script's background
# job is not a process group leader, job control being off.)
start() {
	local name=$1
	shift
	env "$@" setsid "$CLUSTER_DIR/checkd" >"$CLUSTER_DIR/$name.log" 2>&1 </dev/null &
	checkd_pids+=($!)
}

# ready waits until the last started process answers 200 on http://$2/readyz.
ready() {
	local name=$1 addr=$2 pid=${checkd_pids[-1]} deadline=$((SECONDS + ready_timeout))
	until http_ok "$addr" /readyz; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "cluster: $name exited at start; the end of its log ($CLUSTER_DIR/$name.log):" >&2
			tail -n 20 "$CLUSTER_DIR/$name.log" >&2 || true
			stop 1
		fi
		[ "$SECONDS" -lt "$deadline" ] || fail "$name is not ready after ${ready_timeout}s; its log: $CLUSTER_DIR/$name.log"
		sleep 0.2
	done
	say "$name ready (pid $pid)"
}

# The scheduler+api process first: it seeds the demo data before it is
# ready, so the workers, started after, find it there and seed nothing.
start api CHECKD_ROLES=scheduler,api CHECKD_HTTP_ADDR="$http"
ready api "$http"
for i in 1 2; do
	m=127.0.0.1:${worker_ports[$((i - 1))]}
	start "worker$i" CHECKD_ROLES=worker CHECKD_METRICS_ADDR="$m"
	ready "worker$i" "$m"
done

# A company whose connections are checked through the checker service
# (after the demo seeding, which seeds an empty store only).
if [ -n "$http_datasource" ]; then
	ctl() { CHECKD_URL=http://$http CHECKD_API_KEY=$key "$CLUSTER_DIR/checkctl" -o json "$@"; }
	co=$(ctl company create "Checker Service Demo" | sed -n 's/.*"id": *"\(co_[^"]*\)".*/\1/p' | head -1)
	[ -n "$co" ] || fail "could not create the checker service's demo company"
	for user in user_good user_good user_good user_nodocs user_accounts_3 error_PASSWORD_INCORRECT error_WEBSITE_DOWN; do
		ctl connection create "$co" --datasource "$http_datasource" --username "$user" --password demo-password --name "$user" >/dev/null ||
			fail "could not create a $http_datasource connection"
	done
	say "company $co: 7 connections of datasource $http_datasource, checked by checkd-sandbox"
fi

cat <<INFO

checkd cluster ready (logs in $CLUSTER_DIR):
  API         http://$http/v1/   API key: $key
  dashboard   http://$http/monitoring/   (user admin, password the API key)
  metrics     http://$http/metrics, http://127.0.0.1:${worker_ports[0]}/metrics, http://127.0.0.1:${worker_ports[1]}/metrics
              (the API key in X-API-Key, or the dashboard's login)
  redis       $CHECKD_REDIS_URL
  checker     http://127.0.0.1:$checker_port/check   (checkd-sandbox; datasource sandbox-http)
  try         curl -s -H 'X-API-Key: $key' http://$http/v1/company
              CHECKD_URL=http://$http CHECKD_API_KEY=$key $CLUSTER_DIR/checkctl companies list
Ctrl-C stops the checkd processes gracefully, then the checker service and Redis.

INFO

all=("${checkd_pids[@]}" "$checker_pid")
[ -n "$redis_pid" ] && all+=("$redis_pid")
rc=0
wait -n "${all[@]}" || rc=$?
echo "cluster: a process exited by itself (status $rc): stopping the rest; see the logs in $CLUSTER_DIR" >&2
stop 1
