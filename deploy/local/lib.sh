# shellcheck shell=bash
# Shared by the scripts of deploy/local; source it, do not run it.
# Everything lives under one temp directory, on loopback ports in a high range, and is
# started and stopped by pid file: nothing here touches a Redis it did not start.

# SLUICE_LOCAL_DIR: where the nodes keep their config, data, logs and pid files.
SLUICE_LOCAL_DIR=${SLUICE_LOCAL_DIR:-${TMPDIR:-/tmp}/sluice-local-$(id -u)}

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH (apt-get install redis-server redis-tools)"
  done
}

# check_port PORT: fail when something already listens on 127.0.0.1:PORT.
check_port() {
  local port=$1
  if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1024 || port > 65535)); then
    die "bad port: $port"
  fi
  ((port != 6379 && port != 26379)) || die "refusing the default Redis port $port: pick a high port"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "127.0.0.1:$port is already in use (set the ports with the environment variables in $(basename "$0"))"
  fi
}

# wait_ping PORT: wait up to 10 s for a Redis (or Sentinel) to answer on PORT.
wait_ping() {
  local port=$1 i
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  die "nothing answers on 127.0.0.1:$port (see the logs under $SLUICE_LOCAL_DIR)"
}

# stop_dir DIR: stop every process whose pid file is under DIR (all at once, then wait
# for each), then remove DIR.
stop_dir() {
  local dir=$1 pidfile pid i pids=()
  [[ -d $dir ]] || return 0
  while IFS= read -r pidfile; do
    pid=$(<"$pidfile") || continue
    [[ $pid =~ ^[0-9]+$ ]] || continue
    # Only a redis process: a stale pid file may name a pid reused by something else.
    if [[ -r /proc/$pid/cmdline ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q redis; then
      continue
    fi
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done < <(find "$dir" -name '*.pid' -type f)
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$dir"
}
