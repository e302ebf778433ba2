#!/usr/bin/env bash
# bench_chain.sh - message rate of postern_milter's chain alone (no smtpd):
# one session of N messages driven by milter-drive through 0 and 3 no-op
# libmilter milters (milter-script), all on 127.0.0.1.
#   bench/milter/bench_chain.sh [BUILD_DIR] [N]
# Prints messages/second for each chain length. Use a build without
# sanitizers. The Postern-vs-Postfix comparison of the issue needs smtpd
# and lives with it.
set -euo pipefail
BUILD=${1:-build}
N=${2:-2000}
T=$BUILD/tests/milter
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
printf 'From: a@example.net\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n' > "$W/msg.eml"
head -c 3000 /dev/zero | tr '\0' 'x' | fold -w 70 | sed 's/$/\r/' >> "$W/msg.eml"
ports=()
for i in 1 2 3; do
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  "$T/milter-script" -p "inet:$port@127.0.0.1" & pids+=($!)
  ports+=("$port")
done
for p in "${ports[@]}"; do
  until python3 -c "import socket;socket.create_connection(('127.0.0.1',$p),1)" 2>/dev/null; do sleep 0.05; done
done
run() {
  local list=$1 t0 t1
  t0=$(date +%s.%N)
  "$T/milter-drive" -o "smtpd_milters = $list" --helo h --from '<a@example.net>' \
    --rcpt '<b@example.org>' --message "$W/msg.eml" --messages "$N" > /dev/null
  t1=$(date +%s.%N)
  python3 -c "print('%-10s %8.0f msg/s' % ('$2', $N / ($t1 - $t0)))"
}
run "" "0 milters"
run "inet:127.0.0.1:${ports[0]}" "1 milter"
run "inet:127.0.0.1:${ports[0]}, inet:127.0.0.1:${ports[1]}, inet:127.0.0.1:${ports[2]}" "3 milters"
