# What the benchmarks against Kamailio share; sourced by bench/registrar.sh and
# bench/dispatcher.sh after they cd to the checkout.

# Installs, from Debian, each of the given commands that is missing (for benchmarks only),
# and SIPp through the project's setup. (The full setup wants the network, which a benchmark
# run inside a loopback-only network namespace does not have: run it once outside.)
bench_require() {
  command -v sipp >/dev/null || bash scripts/setup.sh >/dev/null
  local need=() command
  for command in "$@"; do command -v "$command" >/dev/null || need+=("$command"); done
  [ ${#need[@]} -gt 0 ] || return 0
  echo "== apt: ${need[*]} (for this benchmark only)"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

# Waits up to 10 s for Kamailio's control socket ($1) and for "ready" in each node log
# given after it; prints the log of what did not start and fails.
bench_wait_started() {
  local ctl=$1; shift
  local _ log
  for _ in $(seq 1 100); do
    if command kamcmd -s "unix:$ctl" core.version >/dev/null 2>&1; then
      for log in "$@"; do grep -q ready "$log" || continue 2; done
      return 0
    fi
    sleep 0.1
  done
  command kamcmd -s "unix:$ctl" core.version >/dev/null 2>&1 || { echo "Kamailio did not start"; return 1; }
  for log in "$@"; do grep -q ready "$log" || { cat "$log"; echo "a node did not start"; return 1; }; done
}

CLK_TCK=$(getconf CLK_TCK)

# CPU ticks (user + system) of the given processes, summed.
ticks() { for pid in "$@"; do awk '{ print $14 + $15 }' "/proc/$pid/stat"; done | awk '{ s += $1 } END { print s }'; }

# A process and its children, one PID a line.
process_tree() { echo "$1"; ps -o pid= --ppid "$1" | awk '{ print $1 }'; }

# $1 / $2 with two decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
