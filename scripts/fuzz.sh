#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME (default 10s) each.
# Go fuzzes one target of one package per run, hence the loop.
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" at the end of -fuzztime, having found nothing (a race
# fixed in Go 1.27: go.dev/issue/75804; it shows on a busy machine). Such a
# run, which wrote no failing input, is run once more; a target that writes
# a failing input (testdata/fuzz/<target>/) or fails twice fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
found=0
failed=()

# inputs prints how many failing inputs the target has on disk.
inputs() {
	local dir=$1/testdata/fuzz/$2
	if [ -d "$dir" ]; then find "$dir" -type f | wc -l; else echo 0; fi
}

for pkg in $(go list ./...); do
	# A package that does not build fails here rather than being skipped.
	list=$(go test -list '^Fuzz' "$pkg")
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep '^Fuzz' <<<"$list" || true); do
		found=1
		for attempt in 1 2; do
			again=""
			[ "$attempt" = 2 ] && again=", again"
			echo "== $pkg $target ($fuzztime$again)"
			before=$(inputs "$dir" "$target")
			log=$(mktemp)
			rc=0
			# A short minimization keeps each target near its time budget.
			go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s "$pkg" 2>&1 | tee "$log" || rc=$?
			after=$(inputs "$dir" "$target")
			race=0
			grep -q '^    context deadline exceeded$' "$log" && race=1
			rm -f "$log"
			if [ "$rc" = 0 ]; then
				break
			fi
			if [ "$after" = "$before" ] && [ "$race" = 1 ] && [ "$attempt" = 1 ]; then
				echo "-- $target: 'context deadline exceeded' with no failing input written: Go's coordinator race (go.dev/issue/75804); running it again"
				continue
			fi
			failed+=("$pkg $target")
			break
		done
	done
done
if [ "$found" = 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
	printf 'fuzz target failed: %s\n' "${failed[@]}" >&2
	echo "failing inputs are under each package's testdata/fuzz/<target>/; replay one with go test -run '<target>/<file>' <package>" >&2
	exit 1
fi
