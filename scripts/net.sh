# Shell helpers for the scripts that start servers on loopback ports
# (test.sh, cluster.sh); source it. Bash's /dev/tcp does the probing, so
# nothing beyond bash is needed.

# port_open reports whether something listens on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints a port nothing listens on and that is not among its
# arguments (ports already handed out), from 20000 up to the kernel's
# ephemeral range: a port in that range can be taken between this check and
# the bind by the local end of any outgoing connection.
free_port() {
	local p taken low=32768 span
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	span=$((low > 21000 ? low - 20000 : 1000))
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % span))
		taken=""
		for q in "$@"; do [ "$p" = "$q" ] && taken=1; done
		[ -z "$taken" ] && ! port_open "$p" && { echo "$p"; return 0; }
	done
	echo "no free port found" >&2
	return 1
}

# redis_ready reports whether a Redis on 127.0.0.1:$1 answers PING.
redis_ready() {
	local reply=""
	# Braces make the 2>/dev/null apply to this open only.
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	printf 'PING\r\n' >&3
	read -r -t 1 reply <&3 || true
	exec 3<&- 3>&-
	[[ "$reply" == +PONG* ]]
}

# http_ok reports whether GET http://$1$2 ($1 host:port) answers 200.
http_ok() {
	local host=${1%:*} port=${1##*:} status=""
	{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&3
	read -r -t 2 status <&3 || true
	exec 3<&- 3>&-
	[[ "$status" == "HTTP/1."?" 200"* ]]
}
