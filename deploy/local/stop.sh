#!/usr/bin/env bash
# Stop what cluster-start.sh and/or sentinel-start.sh started, by their pid files, and
# remove their temp dirs.
#
#   deploy/local/stop.sh [cluster|sentinel|all]    (default all)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

what=${1:-all}
case $what in
  cluster | sentinel) stop_dir "$SLUICE_LOCAL_DIR/$what" ;;
  all)
    stop_dir "$SLUICE_LOCAL_DIR/cluster"
    stop_dir "$SLUICE_LOCAL_DIR/sentinel"
    rmdir "$SLUICE_LOCAL_DIR" 2>/dev/null || true
    ;;
  *) die "usage: $0 [cluster|sentinel|all]" ;;
esac
echo "stopped: $what"
