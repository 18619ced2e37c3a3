#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME (default 10s) each.
# Go fuzzes one target of one package per run, hence the loop.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
found=0
for pkg in $(go list ./...); do
	# A package that does not build fails here rather than being skipped.
	list=$(go test -list '^Fuzz' "$pkg")
	for target in $(grep '^Fuzz' <<<"$list" || true); do
		found=1
		echo "== $pkg $target ($fuzztime)"
		# A short minimization keeps each target near its time budget.
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s "$pkg"
	done
done
if [ "$found" = 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
