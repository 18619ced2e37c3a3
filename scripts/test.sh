#!/usr/bin/env bash
# Runs go vet and every test with -race. The real-Redis tests share one
# throwaway redis-server started here on a free loopback port (redistest
# reads CHECKD_TEST_REDIS_ADDR); it is killed on exit whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet ./..."
go vet ./...

redis_pid=""
redis_dir=""
cleanup() {
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid" 2>/dev/null || true
		wait "$redis_pid" 2>/dev/null || true
	fi
	if [ -n "$redis_dir" ]; then
		rm -rf "$redis_dir"
	fi
}
trap cleanup EXIT INT TERM

# port_open, redis_ready
source scripts/net.sh

start_redis() {
	local port tries i
	redis_dir=$(mktemp -d)
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + RANDOM % 40000))
		port_open "$port" && continue
		redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
			--databases 1024 --dir "$redis_dir" --protected-mode yes \
			>"$redis_dir/redis.log" 2>&1 &
		redis_pid=$!
		for i in $(seq 1 100); do
			if redis_ready "$port"; then
				export CHECKD_TEST_REDIS_ADDR="127.0.0.1:$port"
				echo "== redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on $CHECKD_TEST_REDIS_ADDR"
				return 0
			fi
			if ! kill -0 "$redis_pid" 2>/dev/null; then
				break # it exited (port taken meanwhile?): try another port
			fi
			sleep 0.1
		done
		kill "$redis_pid" 2>/dev/null || true
		wait "$redis_pid" 2>/dev/null || true
		redis_pid=""
	done
	echo "redis-server did not start; its log:" >&2
	cat "$redis_dir/redis.log" >&2 || true
	return 1
}

if command -v redis-server >/dev/null 2>&1; then
	start_redis
else
	echo "redis-server is not installed; install it with: apt-get update && apt-get install -y redis-server" >&2
	if [ -n "${CI:-}" ]; then
		exit 1
	fi
	echo "WARNING: continuing without it: the real-Redis tests will be skipped" >&2
fi

echo "== go test -race -count=1 ./..."
go test -race -count=1 ./...
