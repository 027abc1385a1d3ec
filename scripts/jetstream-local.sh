#!/usr/bin/env bash
# A 3-node NATS JetStream cluster and 2 cloud-stub replicas on this machine, for trying the scaled-out backend:
#
#   scripts/jetstream-local.sh [DATA_DIR]        (default ./data/jetstream; Ctrl-C stops everything)
#
#   NATS        nats://127.0.0.1:4222, :4223, :4224 (cluster routes on 6222-6224, monitoring on 8222-8224)
#   replica a   gRPC 127.0.0.1:50051   admin http://127.0.0.1:9181
#   replica b   gRPC 127.0.0.1:50061   admin http://127.0.0.1:9191
#
# Then point a gateway at both replicas:
#   npx fleetgate gateway --allow-anonymous --upstream 127.0.0.1:50051,127.0.0.1:50061
# Needs Debian's nats-server (apt-get install nats-server).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-./data/jetstream}
command -v nats-server >/dev/null || { echo "nats-server not found: apt-get install nats-server" >&2; exit 1; }
mkdir -p "$DATA/logs"
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

routes="nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224"
for i in 0 1 2; do
  conf="$DATA/n$i.conf"
  cat > "$conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((4222 + i))
http: 127.0.0.1:$((8222 + i))
jetstream { store_dir: "$DATA/n$i" }
cluster {
  name: fleetgate
  listen: 127.0.0.1:$((6222 + i))
  routes: [$(echo "$routes" | sed 's/,/, /g')]
}
CONF
  nats-server -c "$conf" > "$DATA/logs/n$i.log" 2>&1 &
  pids+=($!)
done

# JetStream needs a meta leader before streams can be made: wait for one (up to 30 s).
for _ in $(seq 1 60); do
  if curl -sf http://127.0.0.1:8222/jsz 2>/dev/null | grep -q '"leader"'; then break; fi
  sleep 0.5
done

nats="nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
for r in a b; do
  port=$([ "$r" = a ] && echo 50051 || echo 50061)
  admin=$([ "$r" = a ] && echo 9181 || echo 9191)
  node gateway/bin/fleetgate.js cloud --allow-anonymous --sink jetstream --nats "$nats" \
    --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" --data "$DATA/cloud-$r" > "$DATA/logs/cloud-$r.log" 2>&1 &
  pids+=($!)
done

echo "NATS JetStream cluster: $nats (logs in $DATA/logs)"
echo "cloud-stub replicas: a 127.0.0.1:50051 (admin :9181), b 127.0.0.1:50061 (admin :9191)"
echo "gateway: npx fleetgate gateway --allow-anonymous --upstream 127.0.0.1:50051,127.0.0.1:50061"
echo "Ctrl-C stops everything."
wait -n "${pids[@]}" || true
echo "a process ended; stopping the rest (see $DATA/logs)" >&2
