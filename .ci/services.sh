#!/usr/bin/env bash
# Start the local services the integration tests use, if they are down. The commands are the
# machine's own (see the workplace notes); each is a no-op when the service already runs.
set -uo pipefail

up() { # host port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
wait_up() { # port name
  for _ in $(seq 1 60); do up "$1" && { echo "$2 is up on $1"; return 0; }; sleep 1; done
  echo "$2 did not come up on port $1" >&2
  return 1
}

if ! up 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_up 5432 PostgreSQL
else echo "PostgreSQL is up"; fi

if ! up 5672; then
  rabbitmq-server -detached || true
  wait_up 5672 RabbitMQ
else echo "RabbitMQ is up"; fi

if ! up 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_up 6379 Redis
else echo "Redis is up"; fi

if ! up 4222; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
  wait_up 4222 "NATS (JetStream)"
else echo "NATS is up"; fi

if ! up 1883; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
  wait_up 1883 Mosquitto
else echo "Mosquitto is up"; fi
