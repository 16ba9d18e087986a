#!/usr/bin/env bash
# Start a local Redis Cluster for developing against Sluice's redis+cluster:// store:
# 3 masters (and SLUICE_CLUSTER_REPLICAS replicas each) on loopback, in a temp dir.
#
#   deploy/local/cluster-start.sh
#   go run ./cmd/sluice serve --config deploy/examples --redis "$(deploy/local/cluster-start.sh --url)"
#   deploy/local/stop.sh cluster
#
# Environment:
#   SLUICE_CLUSTER_PORTS     the nodes' ports (default "17001 17002 17003"; with replicas,
#                            give masters × (1 + replicas) ports). The cluster bus of each
#                            node listens on port + 10000.
#   SLUICE_CLUSTER_REPLICAS  replicas per master (default 0)
#   SLUICE_LOCAL_DIR         the temp dir (default ${TMPDIR:-/tmp}/sluice-local-UID)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a ports <<<"${SLUICE_CLUSTER_PORTS:-17001 17002 17003}"
replicas=${SLUICE_CLUSTER_REPLICAS:-0}
dir=$SLUICE_LOCAL_DIR/cluster

url() {
  local p out=""
  for p in "${ports[@]}"; do out+="${out:+,}127.0.0.1:$p"; done
  echo "redis+cluster://$out"
}
if [[ ${1:-} == --url ]]; then
  url
  exit 0
fi

need redis-server redis-cli
[[ $replicas =~ ^[0-9]+$ ]] || die "SLUICE_CLUSTER_REPLICAS must be a number: $replicas"
((${#ports[@]} >= 3 * (1 + replicas))) || die "need at least $((3 * (1 + replicas))) ports for 3 masters with $replicas replicas each, got ${#ports[@]}"
[[ -e $dir ]] && die "$dir exists: is a cluster running? Stop it first: $(dirname "$0")/stop.sh cluster"
for p in "${ports[@]}"; do
  check_port "$p"
  check_port $((p + 10000))
done

mkdir -p "$dir"
trap 'echo "failed; cleaning up" >&2; stop_dir "$dir"' ERR
for p in "${ports[@]}"; do
  mkdir -p "$dir/$p"
  redis-server --port "$p" --bind 127.0.0.1 --daemonize yes \
    --dir "$dir/$p" --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" \
    --cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" --cluster-node-timeout 2000 \
    --save '' --appendonly no
done
addrs=()
for p in "${ports[@]}"; do
  wait_ping "$p"
  addrs+=("127.0.0.1:$p")
done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log"
for ((i = 0; i < 100; i++)); do
  ok=0
  for p in "${ports[@]}"; do
    redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' && ok=$((ok + 1))
  done
  ((ok == ${#ports[@]})) && break
  sleep 0.1
done
((ok == ${#ports[@]})) || die "the cluster did not reach cluster_state:ok (see $dir/create.log)"
trap - ERR

echo "Redis Cluster up: ${#ports[@]} nodes in $dir"
echo "  sluice serve --config deploy/examples --redis '$(url)'"
echo "  stop: $(dirname "$0")/stop.sh cluster"
