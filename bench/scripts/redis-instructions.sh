#!/usr/bin/env bash
# redis-instructions.sh — Redis's own instructions per decision of the window
# script, counted by valgrind's callgrind: repeatable where CPU time on a
# shared machine is not. It starts a private redis-server under callgrind on
# a free port, has the checkout's bench/mergedcall load the window script and
# build the merged script call sluice sends for m one-counter charges (by
# lua.Window and lua.Merger themselves), and replays that call `calls` times
# with redis-benchmark on random counters out of 1,000 (one-second windows of
# 10 buckets, as the bench's sluice-spread run).
#
#   bench/scripts/redis-instructions.sh [checkout] [m] [calls] [packed|hash]
#
# A/B: run two checkouts (both with bench/mergedcall) at the same time — the
# count depends a little on how many buckets roll over per decision, which
# depends on how fast the machine runs valgrind — e.g.
#   git worktree add /tmp/before <rev>
#   bench/scripts/redis-instructions.sh /tmp/before 11 2000 & bench/scripts/redis-instructions.sh . 11 2000; wait
set -euo pipefail
checkout=${1:-.}
m=${2:-11}
calls=${3:-2000}
layout=${4:-packed}
redis=${REDIS_SERVER:-redis-server}
for tool in valgrind callgrind_control redis-benchmark redis-cli go "$redis"; do
  command -v "$tool" >/dev/null || { echo "redis-instructions: $tool not found" >&2; exit 1; }
done

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
(cd "$checkout" && go build -o "$dir/mergedcall" ./bench/mergedcall)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$redis" --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>"$dir/valgrind.log" &
vg=$!
for _ in $(seq 150); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
mapfile -t cmd < <("$dir/mergedcall" -addr "127.0.0.1:$port" -calls "$m" -layout "$layout")

redis-benchmark -p "$port" -r 1000 -n 500 -c 1 "${cmd[@]}" >/dev/null # fill the counters
callgrind_control -z "$vg" >/dev/null 2>&1
redis-benchmark -p "$port" -r 1000 -n "$calls" -c 2 "${cmd[@]}" >/dev/null
callgrind_control -d "$vg" >/dev/null 2>&1
sleep 0.5
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$vg" 2>/dev/null || true
total=$(cat "$dir"/cg.*.1 | awk '/^summary:/ {s += $2} END {print s}')
echo "$checkout m=$m $layout: $((total / (calls * m))) instructions per decision"
