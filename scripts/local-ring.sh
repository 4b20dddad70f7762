#!/usr/bin/env bash
# A local ring of counterd nodes on one machine, for trying the cluster out: librdkafka's mock
# Kafka cluster (hosted by kcat: no broker to install), one redis-server, and NODES nodes (default
# 3) on ports BASE_PORT… (default 8081…), each with its own data dir and log under a temp dir.
# Ctrl-C stops everything. Needs kcat and redis-server (apt-get install -y kcat redis-server).
#   scripts/local-ring.sh            # then: curl localhost:8081/v1/cluster
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-3}
BASE_PORT=${BASE_PORT:-8081}
REDIS_PORT=${REDIS_PORT:-6390}
DIR=$(mktemp -d -t counterd-ring-XXXX)
pids=()
cleanup () {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; logs kept in $DIR"
}
trap cleanup EXIT INT TERM

npm run build --silent

kcat -X test.mock.num.brokers=3 -b 127.0.0.1:1 -C -t __ring_keepalive -q 2> "$DIR/kafka.log" &
pids+=($!)
brokers=''
for _ in $(seq 100); do
  brokers=$(grep -oE '(bootstrap\.servers=|replaced with )[0-9.]+:[0-9]+(,[0-9.]+:[0-9]+)*' "$DIR/kafka.log" | head -1 | sed -E 's/^(bootstrap\.servers=|replaced with )//' || true)
  [ -n "$brokers" ] && break
  sleep 0.1
done
[ -n "$brokers" ] || { echo "the mock Kafka did not start: $(cat "$DIR/kafka.log")"; exit 1; }

redis-server --port "$REDIS_PORT" --save '' --appendonly no --dir "$DIR" > "$DIR/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1 && break; sleep 0.1; done

for i in $(seq "$NODES"); do
  port=$((BASE_PORT + i - 1))
  PORT=$port DATA_DIR="$DIR/node$i" KAFKA_BROKERS="$brokers" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
    CLUSTER_NAME=local-ring node dist/src/main.js > "$DIR/node$i.log" 2>&1 &
  pids+=($!)
  echo "node $i: http://127.0.0.1:$port  (log: $DIR/node$i.log)"
done
echo "Kafka (mock): $brokers   Redis: redis://127.0.0.1:$REDIS_PORT"
echo "waiting for the ring..."
for _ in $(seq 600); do
  ready=0
  for i in $(seq "$NODES"); do
    curl -sf "http://127.0.0.1:$((BASE_PORT + i - 1))/ready" > /dev/null && ready=$((ready + 1))
  done
  [ "$ready" = "$NODES" ] && break
  sleep 0.2
done
curl -s "http://127.0.0.1:$BASE_PORT/v1/cluster" | node -e 'const v = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(`ring generation ${v.generation}: ` + v.members.map((m) => `${m.url} owns ${m.partitions.length}`).join(", "))'
echo "Ctrl-C stops the ring."
wait
