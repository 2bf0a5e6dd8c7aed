#!/usr/bin/env bash
# The Dispatcher benchmark: sipfleet's Dispatcher against Kamailio 5.6's stateful dispatcher
# (bench/kamailio-dispatcher.cfg), under the same SIPp load in the same run, on loopback.
# Each balances round-robin, with Record-Route, over the same two "switches": SIPp UAS that
# answer every INVITE at once (bench/sipp/call_uas.xml). The callers are zero-length calls
# (INVITE, 200, ACK, BYE: bench/sipp/call_uac.xml). Prints, for both and as ratios
# (sipfleet / Kamailio):
#
#   1. the highest rate with under 0.1% failed calls: SIPp offers each rate of RATES for
#      STEP_SECONDS; the achieved rate is the successful calls over the step's wall time;
#   2. CPU-seconds per 1,000 calls at FIXED_RATE (1,000 CPS by default, FIXED_SECONDS long):
#      CPU time of the dispatcher's process (all of Kamailio's processes) over the calls;
#   3. added latency at FIXED_RATE: the time from the INVITE reaching the dispatcher's
#      address to the forwarded INVITE leaving it, per call, from a packet capture
#      (tcpdump) of that run: median and 99th percentile.
#
# On two cores the three SIPp processes compete with the dispatcher under test: at the
# highest rates the bound may be SIPp's, which the printed CPU shares show.
#
# With BENCH_KEEP=<dir>, the servers' logs, SIPp's statistics and the captures are kept there.
#
# Not part of the tests. Every load is bounded in count (-m) and time (-timeout); the
# processes started here are stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"1000 2000 3000 4000 5000 6000 7000 8000"}
STEP_SECONDS=${STEP_SECONDS:-5}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_SECONDS=${FIXED_SECONDS:-10}
KAM_IP=127.0.91.1
NODE_IP=127.0.91.2
CALLER_IP=127.0.91.3
SWITCHES=(127.0.91.4 127.0.91.5)
PORT=5060

source bench/lib.sh
bench_require kamailio tcpdump
cargo build --release -q -p bench-nodes --bin dispatcher-node

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp -r "$work"/. "$BENCH_KEEP"/; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The two switches, answering calls (and, with -aa, the dispatchers' OPTIONS probes) for
# the whole run.
for ip in "${SWITCHES[@]}"; do
  sipp -sf bench/sipp/call_uas.xml -i "$ip" -p "$PORT" -t u1 -aa -m 50000000 -timeout 3600s \
    -buff_size 8388608 -nostdin >/dev/null 2>"$work/uas-$ip.err" &
  pids+=("$!")
done

# Kamailio, with its switches in a dispatcher list.
for ip in "${SWITCHES[@]}"; do echo "1 sip:$ip:$PORT 0 0"; done >"$work/dispatcher.list"
modules=$(dirname "$(find /usr/lib -name dispatcher.so -path '*kamailio*' | head -1)")
sed -e "s|@LISTEN@|$KAM_IP:$PORT|g" -e "s|@MODULES@|$modules|" -e "s|@CTL@|$work/kamailio.ctl|" \
  -e "s|@LIST@|$work/dispatcher.list|" -e "s|@CHILDREN@|${KAMAILIO_CHILDREN:-4}|" \
  bench/kamailio-dispatcher.cfg >"$work/kamailio.cfg"
# Its "fm" memory manager: with 2 GB of shared memory the default one ("qm") spent 59% of
# Kamailio's CPU in qm_malloc here (1.31 CPU-seconds per 1,000 calls, against 0.44 with fm).
kamailio -f "$work/kamailio.cfg" -DD -E -m 2048 -M 16 -x fm -Y "$work" -w "$work" >"$work/kamailio.log" 2>&1 &
kam_pid=$!
pids+=("$kam_pid")
kamcmd() { command kamcmd -s "unix:$work/kamailio.ctl" "$@"; }

switch_addrs=()
for ip in "${SWITCHES[@]}"; do switch_addrs+=("$ip:$PORT"); done
./target/release/dispatcher-node "$NODE_IP" "$PORT" "${switch_addrs[@]}" >"$work/node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")

bench_wait_started "$work/kamailio.ctl" "$work/node.log" || { cat "$work/kamailio.log"; exit 1; }
# Kamailio's first probes: both switches active (flags A, not I/P) before any call.
for _ in $(seq 1 150); do
  [ "$(kamcmd dispatcher.list | grep -c 'FLAGS: AP\|FLAGS: A$\|FLAGS: AX')" -ge 2 ] && break
  sleep 0.1
done

clk=$CLK_TCK
mapfile -t kam_all < <(process_tree "$kam_pid")

# Runs SIPp's calls against $1 at rate $2 for $3 seconds from port $4; prints
# "<successful> <failed> <seconds> <cpu-seconds>" (the CPU of the processes after $4).
port_seq=17000
call_load() {
  local target=$1 rate=$2 seconds=$3; shift 3
  port_seq=$((port_seq + 1))
  local stat="$work/stat-$port_seq.csv" calls=$((rate * seconds))
  local t0 t1 start end
  t0=$(ticks "$@")
  start=$(date +%s.%N)
  sipp "$target" -sf bench/sipp/call_uac.xml -s bob -i "$CALLER_IP" -p "$port_seq" -t u1 \
    -r "$rate" -rp 1000 -m "$calls" -l "$((rate * 4))" -recv_timeout 4000 \
    -timeout "$((seconds * 3 + 20))s" -buff_size 8388608 -nostdin \
    -trace_stat -stf "$stat" -fd 60 >/dev/null 2>"$work/sipp-$port_seq.err" || true
  end=$(date +%s.%N)
  t1=$(ticks "$@")
  awk -F';' -v start="$start" -v end="$end" -v t="$((t1 - t0))" -v c="$clk" '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } }
    NR > 1 { ok = $s; failed = $f }
    END { printf "%d %d %.3f %.3f\n", ok, failed, end - start, t / c }' "$stat"
}

echo "sipfleet Dispatcher at $NODE_IP:$PORT, Kamailio $(kamailio -v | awk '/^version/ { print $3 }') dispatcher at $KAM_IP:$PORT (${KAMAILIO_CHILDREN:-4} UDP workers, 2 GB shared memory, fm allocator); round-robin over 2 SIPp switches; $(nproc) cores"

# ---- 1. highest rate with < 0.1% failed ----
echo
echo "1. Zero-length calls per second, each rate offered for $STEP_SECONDS s"
printf '   %8s | %30s | %30s\n' "offered" "sipfleet: achieved (fail%, CPU)" "Kamailio: achieved (fail%, CPU)"
best_node=0
best_kam=0
node_on=1
kam_on=1
step() { # step NAME TARGET RATE PIDS...: prints "<achieved> <fail%> <core share> <sustained rate or 0>"
  local target=$2 rate=$3; shift 3
  read -r ok failed secs cpu < <(call_load "$target" "$rate" "$STEP_SECONDS" "$@")
  awk -v o="$ok" -v f="$failed" -v s="$secs" -v c="$cpu" 'BEGIN {
    r = o / s; p = (o + f > 0 ? 100 * f / (o + f) : 100)
    printf "%.0f %.3f %.0f %d\n", r, p, 100 * c / s, (p < 0.1 && o > 0 ? r : 0) }'
}
for rate in $RATES; do
  n_cell="-"
  k_cell="-"
  if [ "$kam_on" = 1 ]; then
    read -r k_rate k_pct k_cpu k_ok < <(step kam "$KAM_IP:$PORT" "$rate" "${kam_all[@]}")
    k_cell=$(printf '%8d (%7.3f%%, %3d%% core)' "$k_rate" "$k_pct" "$k_cpu")
    [ "$k_ok" -gt "$best_kam" ] && best_kam=$k_ok
    [ "$k_ok" -eq 0 ] && kam_on=0
  fi
  if [ "$node_on" = 1 ]; then
    read -r n_rate n_pct n_cpu n_ok < <(step node "$NODE_IP:$PORT" "$rate" "$node_pid")
    n_cell=$(printf '%8d (%7.3f%%, %3d%% core)' "$n_rate" "$n_pct" "$n_cpu")
    [ "$n_ok" -gt "$best_node" ] && best_node=$n_ok
    [ "$n_ok" -eq 0 ] && node_on=0
  fi
  printf '   %8d | %30s | %30s\n' "$rate" "$n_cell" "$k_cell"
  [ "$node_on" = 0 ] && [ "$kam_on" = 0 ] && break
  sleep 2
done
echo "   sustained (< 0.1% failed): sipfleet $best_node/s, Kamailio $best_kam/s, sipfleet / Kamailio $(ratio "$best_node" "$best_kam")   (target: at least 2)"

# ---- 2 and 3. CPU per call and added latency at a fixed rate ----
echo
echo "2. At $FIXED_RATE CPS for $FIXED_SECONDS s: CPU per 1,000 calls, and the INVITE's time inside the dispatcher"
fixed() { # fixed IP PIDS...: prints "<cpu-s per 1,000> <ok> <failed> <p50 us> <p99 us> <matched>"
  local ip=$1; shift
  local cap="$work/capture-$ip.pcap"
  tcpdump -i lo -n -B 262144 -s 4096 -w "$cap" "udp and host $ip and port $PORT" 2>"$work/tcpdump.err" &
  local cap_pid=$!
  pids+=("$cap_pid")
  sleep 1
  read -r ok failed _ cpu < <(call_load "$ip:$PORT" "$FIXED_RATE" "$FIXED_SECONDS" "$@")
  sleep 1
  kill -INT "$cap_pid" 2>/dev/null || true
  wait "$cap_pid" 2>/dev/null || true
  read -r p50 p99 matched < <(python3 bench/invite_latency.py "$cap" "$ip:$PORT")
  awk -v c="$cpu" -v o="$ok" -v f="$failed" -v a="$p50" -v b="$p99" -v m="$matched" \
    'BEGIN { printf "%.4f %d %d %s %s %s\n", (o > 0 ? c / o * 1000 : 0), o, f, a, b, m }'
}
read -r k_cpk k_ok k_failed k_p50 k_p99 k_m < <(fixed "$KAM_IP" "${kam_all[@]}")
read -r n_cpk n_ok n_failed n_p50 n_p99 n_m < <(fixed "$NODE_IP" "$node_pid")
echo "   CPU-s per 1,000 calls:  sipfleet $n_cpk ($n_ok ok, $n_failed failed), Kamailio $k_cpk ($k_ok ok, $k_failed failed)"
echo "                           sipfleet / Kamailio $(ratio "$n_cpk" "$k_cpk")   (target: at most 0.5)"
echo "   added latency, µs:      sipfleet p50 $n_p50 / p99 $n_p99 ($n_m INVITEs), Kamailio p50 $k_p50 / p99 $k_p99 ($k_m INVITEs)"
echo "                           sipfleet / Kamailio p50 $(ratio "$n_p50" "$k_p50"), p99 $(ratio "$n_p99" "$k_p99")   (target: at most 0.5)"
