#!/usr/bin/env bash
# Where a sipfleet node's CPU goes, under the registrar benchmark's loads: perf (Debian's
# linux-perf) samples the node (software cpu-clock, with call graphs) while SIPp registers
# USERS users at FIXED_RATE per second with digest authentication, then while the node sends
# its keep-alives to them and SIPp answers. Prints the hottest functions of each phase.
#
# The samples stay in target/profiling/{register,keepalive}.data for `perf report -i`.
#
# Not part of the tests. Every load is bounded in count and time; what it starts is
# stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-10000}
FIXED_RATE=${FIXED_RATE:-8000}
PASSWORD=bench-password
NODE_IP=127.0.91.2
PHONES_IP=127.0.91.3
PHONES=16101

command -v perf >/dev/null || { echo "perf is needed (Debian: linux-perf)"; exit 1; }
# The release build, with line tables so that samples name functions and lines, and frame
# pointers so that call chains are whole.
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR=target/profiling \
  RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release -q -p bench-nodes
node_bin=target/profiling/release/registrar-node

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo SEQUENTIAL
  for i in $(seq 1 "$USERS"); do
    printf 'bench%05d;[authentication username=bench%05d password=%s]\n' "$i" "$i" "$PASSWORD"
  done
} >"$work/users.csv"

"$node_bin" "$NODE_IP" 5060 "$USERS" "$PASSWORD" >"$work/node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
for _ in $(seq 1 100); do grep -q ready "$work/node.log" && break; sleep 0.1; done

register() { # register RATE CALLS
  sipp "$NODE_IP:5060" -sf bench/sipp/register_users.xml -inf "$work/users.csv" \
    -i "$PHONES_IP" -p "$PHONES" -t u1 -r "$1" -rp 1000 -m "$2" -l 30000 -aa \
    -recv_timeout 4000 -timeout 90s -buff_size 8388608 -nostdin >/dev/null 2>&1 || true
}
top() { # top PERF_DATA
  perf report -i "$1" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E "^ +[0-9.]+%" | head -n 30 || true
}

register 2000 "$USERS"
echo "== registrations: $FIXED_RATE/s for 5 s"
perf record -e cpu-clock -F 2000 -g -p "$node_pid" -o target/profiling/register.data -- sleep 6 >/dev/null 2>&1 &
perf_pid=$!
register "$FIXED_RATE" $((FIXED_RATE * 5))
wait "$perf_pid" || true
top target/profiling/register.data

echo
echo "(35 s for the registrations' transactions to end, as in bench/registrar.sh)"
sleep 35
echo "== keep-alives to $USERS contacts (OPTIONS every 30 s), 30 s"
sipp -sf bench/sipp/answer_options.xml -i "$PHONES_IP" -p "$PHONES" -t u1 -m 1000000 \
  -timeout 60s -buff_size 8388608 -nostdin >/dev/null 2>&1 &
pids+=("$!")
sleep 2
perf record -e cpu-clock -F 2000 -g -p "$node_pid" -o target/profiling/keepalive.data -- sleep 30 >/dev/null 2>&1 || true
top target/profiling/keepalive.data
