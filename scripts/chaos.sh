#!/usr/bin/env bash
# The fault month's faults against real processes, on loopback, for about
# four minutes; it stops itself and prints what it saw.
#
#   bash scripts/chaos.sh
#
# It starts redis-server (append-only file, fsync before every reply), an
# API process that seeds the demo data, two scheduler replicas and two
# workers (bin/checkd, the demo configuration with a 1-minute check interval,
# a 5-second tick and a 30-second scheduler lease), then, while a monitor
# reads every connection through the API every two seconds:
#
#   +20 s  kill -9 a worker mid-check, start it again 5 s later
#   +45 s  kill -9 redis-server, start it again from its AOF
#   +70 s  redis-server down for 30 s
#   +110 s kill -9 a scheduler replica (while it holds the sweep lock, when
#          the timing allows: the script says whether it did)
#
# and runs on for one freshness bound (interval + tick + lease = 95 s) after
# the last fault. It prints the worst staleness of a scheduled connection
# (now - its last check) in each phase against that bound, the checks the
# workers recorded, and the monitor's failed reads (the API answers 503
# while Redis is down). Exit status 1 when a scheduled connection went
# staler than the bound. Logs stay in $CHAOS_DIR (printed at start).
#
# Environment: CHAOS_DIR (default a temp dir), CHAOS_PORT_BASE (use ports
# BASE..BASE+5 instead of free ones).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/net.sh

for bin in redis-server redis-cli python3 curl; do
	command -v "$bin" >/dev/null || { echo "chaos.sh needs $bin on PATH" >&2; exit 1; }
done

dir=${CHAOS_DIR:-$(mktemp -d -t checkd-chaos.XXXXXX)}
mkdir -p "$dir/redis"
declare -A pid=()
cleanup() {
	trap - EXIT INT TERM
	touch "$dir/stop"
	for name in "${!pid[@]}"; do kill -KILL "${pid[$name]}" 2>/dev/null || true; done
	for name in "${!pid[@]}"; do wait "${pid[$name]}" 2>/dev/null || true; done
	echo "chaos: stopped everything; logs in $dir"
}
trap cleanup EXIT INT TERM

ports=()
for i in 0 1 2 3 4 5; do
	if [ -n "${CHAOS_PORT_BASE:-}" ]; then
		ports+=($((CHAOS_PORT_BASE + i)))
	else
		ports+=("$(free_port "${ports[@]}")")
	fi
done
rport=${ports[0]} http=127.0.0.1:${ports[1]} m1=${ports[2]} m2=${ports[3]} s1m=${ports[4]} s2m=${ports[5]}
started=$(date +%s)
say() { printf '[%4ds] %s\n' $(($(date +%s) - started)) "$*"; }

start_redis() {
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
		--dir "$dir/redis" >>"$dir/redis.log" 2>&1 &
	pid[redis]=$!
	for _ in $(seq 100); do redis_ready "$rport" && return; sleep 0.1; done
	echo "redis-server did not start; see $dir/redis.log" >&2
	exit 1
}

go build -o "$dir/checkd" ./cmd/checkd
start_redis

# The demo configuration, faster: a 1-minute interval, a 30-second lease.
sed -e 's/^checkInterval:.*/checkInterval: 1m/' configs/demo.yaml >"$dir/seed.yaml"
printf '\nscheduler:\n  lease: 30s\n' >>"$dir/seed.yaml"
sed -e 's/^  enabled: true/  enabled: false/' "$dir/seed.yaml" >"$dir/chaos.yaml"
export CHECKD_REDIS_URL="redis://127.0.0.1:$rport/0"
export CHECKD_ENCRYPTION_KEY=${CHECKD_ENCRYPTION_KEY:-$(openssl rand -hex 32)}
export CHECKD_API_KEYS=${CHECKD_API_KEYS:-$(openssl rand -hex 16)}
bound=95 # interval + tick + lease, seconds

run() { # name, config, roles, extra env...
	local name=$1 conf=$2 roles=$3
	shift 3
	env CHECKD_CONFIG="$conf" CHECKD_ROLES="$roles" "$@" "$dir/checkd" >>"$dir/$name.log" 2>&1 &
	pid[$name]=$!
}
run api "$dir/seed.yaml" api CHECKD_HTTP_ADDR="$http"
for _ in $(seq 100); do http_ok "$http" /readyz && break; sleep 0.1; done
run sched1 "$dir/chaos.yaml" scheduler CHECKD_METRICS_ADDR=127.0.0.1:$s1m
run sched2 "$dir/chaos.yaml" scheduler CHECKD_METRICS_ADDR=127.0.0.1:$s2m
run worker1 "$dir/chaos.yaml" worker CHECKD_METRICS_ADDR=127.0.0.1:$m1
run worker2 "$dir/chaos.yaml" worker CHECKD_METRICS_ADDR=127.0.0.1:$m2
sleep 1
for name in "${!pid[@]}"; do
	if ! kill -0 "${pid[$name]}" 2>/dev/null; then
		echo "chaos: $name did not start; its log:" >&2
		tail -5 "$dir/$name.log" >&2
		exit 1
	fi
done
started=$(date +%s) # the schedule below counts from here
say "up: redis 127.0.0.1:$rport, api http://$http, 2 schedulers, 2 workers; logs in $dir"

# The monitor: every 2 s, every connection through the API.
echo warm-up >"$dir/phase"
python3 - "http://$http" "$CHECKD_API_KEYS" "$dir" "$bound" >"$dir/monitor.out" 2>&1 <<'PY' &
import datetime, json, os, sys, time, urllib.request
api, key, d, bound = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
def get(path):
    r = urllib.request.Request(api + path, headers={"X-API-Key": key})
    with urllib.request.urlopen(r, timeout=5) as f:
        return json.load(f)
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
worst, reads, failed, over = {}, 0, 0, []
while not os.path.exists(d + "/stop"):
    phase = open(d + "/phase").read().strip()
    try:
        now = time.time()
        for co in get("/v1/company")["companies"]:
            cursor = ""
            while True:
                page = get("/v1/connection/company/%s?limit=1000%s" % (co["id"], "&cursor=" + cursor if cursor else ""))
                for c in page["connections"]:
                    if c.get("nextCheckAt") is None:
                        continue  # not scheduled: credential-blocked or inactive
                    age = now - ts(c.get("lastCheckAt") or c["createdAt"])
                    if age > worst.get(phase, (0, ""))[0]:
                        worst[phase] = (age, c["id"])
                    if age > bound and phase != "warm-up":
                        over.append((phase, c["id"], round(age)))
                cursor = page.get("nextCursor") or ""
                if not cursor:
                    break
        reads += 1
    except Exception:
        failed += 1
    time.sleep(2)
print("monitor: %d full reads, %d failed (API unavailable)" % (reads, failed))
for phase in worst:
    print("  worst staleness %-38s %6.1f s  (%s)" % (phase + ":", worst[phase][0], worst[phase][1]))
print("  over the bound of %.0f s: %d readings%s" % (bound, len(over), (", e.g. %s" % over[:3]) if over else ""))
sys.exit(1 if over else 0)
PY
pid[monitor]=$!

stop() { # name: kill -9 and reap without bash's job report
	kill -KILL "${pid[$1]}" 2>/dev/null || true
	wait "${pid[$1]}" 2>/dev/null || true
}

at() { # seconds since start
	local left=$(($1 - ($(date +%s) - started)))
	[ "$left" -gt 0 ] && sleep "$left"
	return 0
}
phase() { echo "$*" >"$dir/phase"; say "$*"; }

at 20
phase "worker killed mid-check"
stop worker1
sleep 5
run worker1 "$dir/chaos.yaml" worker CHECKD_METRICS_ADDR=127.0.0.1:$m1

at 45
phase "redis-server killed, restarted from AOF"
stop redis
start_redis

at 70
phase "redis-server down for 30 s"
stop redis
sleep 30
start_redis
phase "after the outage"

at 110
held=no
for _ in $(seq 200); do # the lock is held only while a sweep runs
	if [ -n "$(redis-cli -p "$rport" get cd:sw:lock 2>/dev/null)" ]; then held=yes; break; fi
	sleep 0.02
done
phase "scheduler replica killed (sweep lock held by one: $held)"
stop sched1

at $((110 + bound + 5))
say "done; stopping the monitor"
touch "$dir/stop"
status=0
wait "${pid[monitor]}" || status=$?
unset 'pid[monitor]'
cat "$dir/monitor.out"
for w in "$m1" "$m2"; do
	curl -fs -H "X-API-Key: $CHECKD_API_KEYS" "http://127.0.0.1:$w/metrics" 2>/dev/null |
		awk -v w="$w" '/^checkd_checks_total/ { split($1, a, "outcome=\""); split(a[2], b, "\""); n[b[1]] += $2 }
			END { printf "worker :%s checks since its last start:", w; for (o in n) printf " %s %d", o, n[o]; print "" }'
done
exit "$status"
