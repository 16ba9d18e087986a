#!/usr/bin/env bash
# Start a local Sentinel setup for developing against Sluice's redis+sentinel:// store:
# one master, one replica and three Sentinels watching master name "sluice", on loopback,
# in a temp dir.
#
#   deploy/local/sentinel-start.sh
#   go run ./cmd/sluice serve --config deploy/examples --redis "$(deploy/local/sentinel-start.sh --url)"
#   redis-cli -p 17111 sentinel failover sluice     # try a failover under load
#   deploy/local/stop.sh sentinel
#
# Environment:
#   SLUICE_SENTINEL_MASTER_PORT   (default 17101)
#   SLUICE_SENTINEL_REPLICA_PORT  (default 17102)
#   SLUICE_SENTINEL_PORTS         the Sentinels (default "17111 17112 17113")
#   SLUICE_SENTINEL_MASTER_NAME   (default sluice)
#   SLUICE_LOCAL_DIR              the temp dir (default ${TMPDIR:-/tmp}/sluice-local-UID)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

master=${SLUICE_SENTINEL_MASTER_PORT:-17101}
replica=${SLUICE_SENTINEL_REPLICA_PORT:-17102}
read -r -a sentinels <<<"${SLUICE_SENTINEL_PORTS:-17111 17112 17113}"
name=${SLUICE_SENTINEL_MASTER_NAME:-sluice}
dir=$SLUICE_LOCAL_DIR/sentinel

url() {
  local p out=""
  for p in "${sentinels[@]}"; do out+="${out:+,}127.0.0.1:$p"; done
  echo "redis+sentinel://$out/$name"
}
if [[ ${1:-} == --url ]]; then
  url
  exit 0
fi

need redis-server redis-cli
((${#sentinels[@]} >= 1)) || die "SLUICE_SENTINEL_PORTS is empty"
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "bad master name: $name"
[[ -e $dir ]] && die "$dir exists: is a Sentinel setup running? Stop it first: $(dirname "$0")/stop.sh sentinel"
for p in "$master" "$replica" "${sentinels[@]}"; do check_port "$p"; done

mkdir -p "$dir"
trap 'echo "failed; cleaning up" >&2; stop_dir "$dir"' ERR
start_redis() { # PORT [redis-server args...]
  local p=$1
  shift
  mkdir -p "$dir/$p"
  redis-server --port "$p" --bind 127.0.0.1 --daemonize yes \
    --dir "$dir/$p" --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" \
    --save '' --appendonly no "$@"
}
start_redis "$master"
start_redis "$replica" --replicaof 127.0.0.1 "$master"
wait_ping "$master"
wait_ping "$replica"

quorum=$(((${#sentinels[@]} / 2) + 1))
for p in "${sentinels[@]}"; do
  mkdir -p "$dir/$p"
  # Sentinel rewrites its config file: it must be a writable file of its own.
  cat >"$dir/$p/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
daemonize yes
dir $dir/$p
pidfile $dir/$p/sentinel.pid
logfile $dir/$p/sentinel.log
sentinel monitor $name 127.0.0.1 $master $quorum
sentinel down-after-milliseconds $name 2000
sentinel failover-timeout $name 10000
sentinel parallel-syncs $name 1
CONF
  redis-server "$dir/$p/sentinel.conf" --sentinel
done
for p in "${sentinels[@]}"; do wait_ping "$p"; done

# Wait (up to 60 s: a Sentinel learns of replicas from the master's INFO, polled every
# 10 s) until every Sentinel sees the replica and the other Sentinels, so that a failover
# works right away.
for ((i = 0; i < 600; i++)); do
  ready=0
  for p in "${sentinels[@]}"; do
    info=$(redis-cli -p "$p" sentinel master "$name" 2>/dev/null | tr -d '\r') || continue
    slaves=$(awk '/^num-slaves$/ {getline; print}' <<<"$info")
    others=$(awk '/^num-other-sentinels$/ {getline; print}' <<<"$info")
    [[ $slaves -ge 1 && $others -ge $((${#sentinels[@]} - 1)) ]] && ready=$((ready + 1))
  done
  ((ready == ${#sentinels[@]})) && break
  sleep 0.1
done
((ready == ${#sentinels[@]})) || die "the Sentinels did not discover each other and the replica in time (see $dir)"
trap - ERR

echo "Sentinel setup up: master 127.0.0.1:$master, replica 127.0.0.1:$replica, ${#sentinels[@]} Sentinels, in $dir"
echo "  sluice serve --config deploy/examples --redis '$(url)'"
echo "  failover: redis-cli -p ${sentinels[0]} sentinel failover $name"
echo "  stop: $(dirname "$0")/stop.sh sentinel"
