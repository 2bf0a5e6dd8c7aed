#!/usr/bin/env bash
# The registrar benchmark: sipfleet's node against Kamailio 5.6's registrar, under the same
# SIPp load in the same run, on loopback. Prints, for both and as a ratio (node / Kamailio):
#
#   1. memory per registration: USERS distinct users (10,000 by default) register once with
#      digest authentication; the growth of the node's heap (bytes allocated and not freed,
#      counted by its allocator) and of Kamailio's shared memory (where usrloc keeps
#      contacts), read once the node's transactions have expired (32 s), over USERS;
#   2. CPU for keep-alives: both send SIP OPTIONS to those USERS contacts every 30 s, and a
#      SIPp answers them; CPU time of each server (all of Kamailio's processes) over a
#      60 s window, as a share of one core;
#   3. REGISTER/s: SIPp registers the same users with digest authentication at rising rates
#      (RATES); for each rate, the achieved rate and the share of failed registrations. A
#      rate counts as sustained when under 0.1% failed.
#   4. CPU per registration: at one fixed rate both hold (FIXED_RATE, 8,000/s by default,
#      for 5 s), the CPU time each server spent per 1,000 authenticated registrations. On
#      2 cores SIPp competes with the server, so the highest sustained rate alone cannot
#      tell two fast servers apart; CPU per registration can.
#   5. With BASELINE=<commit>: that commit's node is built (in a worktree of its own) and
#      measured beside this one in every step above, and the OPTIONS round trip of both is
#      timed by the same client (2,000 pings each, median and 90th percentile), so a change
#      is compared with what came before in one run.
#
# Not part of the tests. Every load is bounded in count (-m) and time (-timeout); the servers
# and SIPp processes started here are stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-10000}
RATES=${RATES:-"2000 4000 8000 12000 16000 20000 24000"}
FIXED_RATE=${FIXED_RATE:-8000}
BASELINE=${BASELINE:-}
PASSWORD=bench-password
KAM_IP=127.0.90.1
NODE_IP=127.0.90.2
PHONES_IP=127.0.90.3
KAM_PHONES=16000 # the port Kamailio's users register from (and answer keep-alives on)
NODE_PHONES=16001
BASE_IP=127.0.90.4
BASE_PHONES=16002
KEEPALIVE_WINDOW=60

source bench/lib.sh
bench_require kamailio
cargo build --release -q -p bench-nodes
if [ -n "$BASELINE" ]; then
  # The baseline's own node and bench binary, built apart from this checkout.
  base_tree=target/bench-baseline
  rm -rf "$base_tree"; git worktree prune
  git worktree add -q --detach "$base_tree" "$BASELINE"
  echo "== building the baseline node ($(git -C "$base_tree" log -1 --format='%h %s' | cut -c1-70))"
  (cd "$base_tree" && CARGO_TARGET_DIR="$PWD/../bench-baseline-target" cargo build --release -q -p bench-nodes)
  base_bin=target/bench-baseline-target/release/registrar-node
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  if [ -n "$BASELINE" ]; then git worktree remove --force target/bench-baseline 2>/dev/null || true; fi
}
trap cleanup EXIT

# The users, as SIPp's injection file, taken in order, one per call: the user, and the
# [authentication] keyword with its credentials (SIPp expands no field inside a keyword).
{
  echo SEQUENTIAL
  for i in $(seq 1 "$USERS"); do
    printf 'bench%05d;[authentication username=bench%05d password=%s]\n' "$i" "$i" "$PASSWORD"
  done
} >"$work/users.csv"

# Kamailio, with the configuration in bench/kamailio.cfg.
modules=$(dirname "$(find /usr/lib -name usrloc.so -path '*kamailio*' | head -1)")
sed -e "s|@LISTEN@|$KAM_IP:5060|g" -e "s|@MODULES@|$modules|" -e "s|@CTL@|$work/kamailio.ctl|" \
  -e "s|@PASSWORD@|$PASSWORD|" -e "s|@SECRET@|$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')|" \
  -e "s|@CHILDREN@|${KAMAILIO_CHILDREN:-4}|" bench/kamailio.cfg >"$work/kamailio.cfg"
kamailio -f "$work/kamailio.cfg" -DD -E -m 512 -M 16 -Y "$work" -w "$work" >"$work/kamailio.log" 2>&1 &
kam_pid=$!
pids+=("$kam_pid")
kamcmd() { command kamcmd -s "unix:$work/kamailio.ctl" "$@"; }

./target/release/registrar-node "$NODE_IP" 5060 "$USERS" "$PASSWORD" >"$work/node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
if [ -n "$BASELINE" ]; then
  "$base_bin" "$BASE_IP" 5060 "$USERS" "$PASSWORD" >"$work/base.log" 2>&1 &
  base_pid=$!
  pids+=("$base_pid")
  for _ in $(seq 1 100); do grep -q ready "$work/base.log" && break; sleep 0.1; done
  grep -q ready "$work/base.log" || { cat "$work/base.log"; echo "the baseline node did not start"; exit 1; }
fi

bench_wait_started "$work/kamailio.ctl" "$work/node.log" || { cat "$work/kamailio.log"; exit 1; }

# ---- readings ----
clk=$CLK_TCK
kam_processes() { process_tree "$kam_pid"; }
node_heap() { sleep 1.1; tail -n 1 "$work/${1:-node}.log" | sed -n 's/^heap=\([0-9]*\) .*/\1/p'; }
node_bindings() { sleep 1.1; tail -n 1 "$work/node.log" | sed -n 's/.*bindings=\([0-9]*\)$/\1/p'; }
node_rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$node_pid/status"; }
kam_shm_used() { kamcmd core.shmmem | awk '/real_used/ { print $2 }'; }
kam_contacts() { kamcmd stats.get_statistics usrloc: | awk -F' = ' '/location_contacts/ { print $2 }'; }

# Runs SIPp's registrations against $1 from port $2 at rate $3 for $4 calls (more SIPp
# arguments after); prints "<successful> <failed> <seconds>".
register_load() {
  local target=$1 port=$2 rate=$3 calls=$4
  shift 4
  local stat="$work/stat-$port-$rate.csv"
  rm -f "$stat"
  local start end
  start=$(date +%s.%N)
  sipp "$target" -sf bench/sipp/register_users.xml -inf "$work/users.csv" \
    -i "$PHONES_IP" -p "$port" -t u1 -r "$rate" -rp 1000 -m "$calls" -l 30000 \
    -recv_timeout 4000 -timeout 90s -buff_size 8388608 -nostdin \
    -trace_stat -stf "$stat" -fd 60 "$@" >/dev/null 2>"$work/sipp.err" || true
  end=$(date +%s.%N)
  awk -F';' -v start="$start" -v end="$end" '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } }
    NR > 1 { ok = $s; failed = $f }
    END { printf "%d %d %.3f\n", ok, failed, end - start }' "$stat"
}

# The round trip is timed first, on idle nodes: after the loads below, the expiry of tens of
# thousands of finished transactions would be timed too.
if [ -n "$BASELINE" ]; then
  for round in 1 2 3; do
    echo "   node (round $round):     $(./target/release/registrar-node ping "$NODE_IP:5060" 2000)"
    echo "   baseline (round $round): $(./target/release/registrar-node ping "$BASE_IP:5060" 2000)"
  done >"$work/rtt.txt"
fi

echo "sipfleet node at $NODE_IP:5060, Kamailio $(kamailio -v | awk '/^version/ { print $3 }') at $KAM_IP:5060 (${KAMAILIO_CHILDREN:-4} UDP workers); $USERS users; $(nproc) cores"
echo

# ---- 1. memory per registration ----
heap0=$(node_heap)
rss0=$(node_rss_kb)
shm0=$(kam_shm_used)
read -r kam_ok kam_failed _ < <(register_load "$KAM_IP:5060" "$KAM_PHONES" 2000 "$USERS")
read -r node_ok node_failed _ < <(register_load "$NODE_IP:5060" "$NODE_PHONES" 2000 "$USERS")
echo "First registration of $USERS users: Kamailio $kam_ok ok / $kam_failed failed, node $node_ok ok / $node_failed failed"
if [ -n "$BASELINE" ]; then
  bheap0=$(node_heap base)
  read -r base_ok base_failed _ < <(register_load "$BASE_IP:5060" "$BASE_PHONES" 2000 "$USERS")
  echo "   baseline node: $base_ok ok / $base_failed failed"
fi
echo "Waiting 35 s for the node's REGISTER transactions to expire (Timer J, 64·T1)…"
sleep 35
heap1=$(node_heap)
rss1=$(node_rss_kb)
shm1=$(kam_shm_used)
contacts_node=$(node_bindings)
contacts_kam=$(kam_contacts)
node_per=$(((heap1 - heap0) / USERS))
node_rss_per=$(((rss1 - rss0) * 1024 / USERS))
kam_per=$(((shm1 - shm0) / USERS))
echo
echo "1. Memory per registration ($contacts_node bindings in the node, $contacts_kam contacts in Kamailio)"
echo "   node heap:        $node_per B   (process RSS grew $node_rss_per B per registration)"
echo "   Kamailio shm:     $kam_per B"
echo "   node / Kamailio:  $(ratio "$node_per" "$kam_per")   (target: node under 1 KB)"
if [ -n "$BASELINE" ]; then
  base_per=$((($(node_heap base) - bheap0) / USERS))
  echo "   baseline heap:    $base_per B   (node / baseline: $(ratio "$node_per" "$base_per"))"
fi

# ---- 2. CPU for keep-alives ----
answerers=()
phone_ports=("$KAM_PHONES" "$NODE_PHONES")
[ -n "$BASELINE" ] && phone_ports+=("$BASE_PHONES")
for port in "${phone_ports[@]}"; do
  sipp -sf bench/sipp/answer_options.xml -i "$PHONES_IP" -p "$port" -t u1 -m 1000000 \
    -timeout "$((KEEPALIVE_WINDOW + 30))s" -buff_size 8388608 -nostdin \
    -trace_stat -stf "$work/answers-$port.csv" -fd 1 >/dev/null 2>&1 &
  answerers+=("$!")
  pids+=("$!")
done
sleep 2
mapfile -t kam_all < <(kam_processes)
node_t0=$(ticks "$node_pid")
kam_t0=$(ticks "${kam_all[@]}")
[ -n "$BASELINE" ] && base_t0=$(ticks "$base_pid")
sleep "$KEEPALIVE_WINDOW"
node_t1=$(ticks "$node_pid")
kam_t1=$(ticks "${kam_all[@]}")
[ -n "$BASELINE" ] && base_t1=$(ticks "$base_pid")
answered() { awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "SuccessfulCall(C)") s = i } NR > 1 { n = $s } END { print n + 0 }' "$1"; }
kam_pings=$(answered "$work/answers-$KAM_PHONES.csv")
node_pings=$(answered "$work/answers-$NODE_PHONES.csv")
for pid in "${answerers[@]}"; do kill "$pid" 2>/dev/null || true; done
node_cpu=$(awk -v t="$((node_t1 - node_t0))" -v c="$clk" -v w="$KEEPALIVE_WINDOW" 'BEGIN { printf "%.2f", 100 * t / c / w }')
kam_cpu=$(awk -v t="$((kam_t1 - kam_t0))" -v c="$clk" -v w="$KEEPALIVE_WINDOW" 'BEGIN { printf "%.2f", 100 * t / c / w }')
echo
echo "2. Keep-alives to $USERS contacts, OPTIONS every 30 s, over ${KEEPALIVE_WINDOW} s (answered pings: node $node_pings, Kamailio $kam_pings)"
echo "   node:             $node_cpu% of one core"
echo "   Kamailio:         $kam_cpu% of one core"
echo "   node / Kamailio:  $(ratio "$node_cpu" "$kam_cpu")   (target: node under 5%)"
if [ -n "$BASELINE" ]; then
  base_cpu=$(awk -v t="$((base_t1 - base_t0))" -v c="$clk" -v w="$KEEPALIVE_WINDOW" 'BEGIN { printf "%.2f", 100 * t / c / w }')
  echo "   baseline node:    $base_cpu% of one core ($(answered "$work/answers-$BASE_PHONES.csv") answered; node / baseline: $(ratio "$node_cpu" "$base_cpu"))"
fi

# ---- 3. REGISTER/s at rising rates ----
echo
echo "3. Authenticated REGISTER/s (each: REGISTER, 401, REGISTER with digest, 200), $USERS users in turn"
printf '   %8s | %22s | %22s\n' "offered" "node: achieved (fail%)" "Kamailio: achieved (fail%)"
best_node=0
best_kam=0
for rate in $RATES; do
  calls=$((rate * 3 > USERS ? rate * 3 : USERS))
  # -aa: the phones answer the servers' keep-alives meanwhile.
  read -r k_ok k_failed k_secs < <(register_load "$KAM_IP:5060" "$KAM_PHONES" "$rate" "$calls" -aa)
  read -r n_ok n_failed n_secs < <(register_load "$NODE_IP:5060" "$NODE_PHONES" "$rate" "$calls" -aa)
  if [ -n "$BASELINE" ]; then
    read -r b_ok b_failed b_secs < <(register_load "$BASE_IP:5060" "$BASE_PHONES" "$rate" "$calls" -aa)
    awk -v o="$b_ok" -v f="$b_failed" -v s="$b_secs" -v r="$rate" 'BEGIN { printf "   %8d | baseline node: %d (%.3f%%)\n", r, o / s, 100 * f / (o + f) }'
  fi
  line=$(awk -v no="$n_ok" -v nf="$n_failed" -v ns="$n_secs" -v ko="$k_ok" -v kf="$k_failed" -v ks="$k_secs" -v r="$rate" 'BEGIN {
    nr = no / ns; kr = ko / ks; np = 100 * nf / (no + nf); kp = 100 * kf / (ko + kf)
    printf "%d %d %.0f %.3f %.0f %.3f\n", (np < 0.1 ? nr : 0), (kp < 0.1 ? kr : 0), nr, np, kr, kp }')
  read -r sustained_node sustained_kam n_rate n_pct k_rate k_pct <<<"$line"
  printf '   %8d | %13d (%6.3f%%) | %13d (%6.3f%%)\n' "$rate" "$n_rate" "$n_pct" "$k_rate" "$k_pct"
  [ "$sustained_node" -gt "$best_node" ] && best_node=$sustained_node
  [ "$sustained_kam" -gt "$best_kam" ] && best_kam=$sustained_kam
done
echo "   sustained (< 0.1% failed): node $best_node/s, Kamailio $best_kam/s, node / Kamailio $(ratio "$best_node" "$best_kam")"

# ---- 4. CPU per 1,000 registrations at a fixed rate ----
echo
calls=$((FIXED_RATE * 5))
echo "4. CPU per 1,000 authenticated registrations at $FIXED_RATE/s ($calls registrations each)"
# Prints "<cpu-seconds per 1,000 successful registrations> <ok> <failed>".
cpu_per_thousand() {
  local target=$1 port=$2; shift 2
  local t0 t1 ok failed
  t0=$(ticks "$@")
  read -r ok failed _ < <(register_load "$target" "$port" "$FIXED_RATE" "$calls" -aa)
  t1=$(ticks "$@")
  awk -v t="$((t1 - t0))" -v c="$clk" -v ok="$ok" -v f="$failed" 'BEGIN { printf "%.4f %d %d\n", (ok > 0 ? t / c / ok * 1000 : 0), ok, f }'
}
read -r kam_cpk kam_ok kam_failed < <(cpu_per_thousand "$KAM_IP:5060" "$KAM_PHONES" "${kam_all[@]}")
read -r node_cpk node_ok node_failed < <(cpu_per_thousand "$NODE_IP:5060" "$NODE_PHONES" "$node_pid")
echo "   node:             $node_cpk CPU-s per 1,000 ($node_ok ok, $node_failed failed)"
echo "   Kamailio:         $kam_cpk CPU-s per 1,000 ($kam_ok ok, $kam_failed failed)"
echo "   node / Kamailio:  $(ratio "$node_cpk" "$kam_cpk")   (target: at most 0.5)"
if [ -n "$BASELINE" ]; then
  read -r base_cpk base_ok base_failed < <(cpu_per_thousand "$BASE_IP:5060" "$BASE_PHONES" "$base_pid")
  echo "   baseline node:    $base_cpk CPU-s per 1,000 ($base_ok ok, $base_failed failed; node / baseline: $(ratio "$node_cpk" "$base_cpk"))"

  # ---- 5. OPTIONS round trip, measured first (idle nodes, no transactions left over) ----
  echo
  echo "5. OPTIONS round trip on loopback, idle nodes (2,000 pings each, the same client)"
  cat "$work/rtt.txt"
fi
