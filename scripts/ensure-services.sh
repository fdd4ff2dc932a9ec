#!/usr/bin/env bash
# Start the local services the worker and its tests talk to, if they are not already listening.
# RabbitMQ is required; PostgreSQL is optional locally (its tests skip) and required in CI.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 seconds=${3:-90}
  for _ in $(seq 1 "$seconds"); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "ensure-services: $what did not open port $port within ${seconds}s" >&2
  return 1
}

if ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "ensure-services: starting RabbitMQ" >&2
    rabbitmq-server -detached
    wait_port 5672 RabbitMQ
  else
    echo "ensure-services: RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is not installed" >&2
    exit 1
  fi
fi

# Redis backs the multi-host reply ledger's tests (optional locally, required in CI).
if ! port_open 6379 && command -v redis-server >/dev/null 2>&1; then
  echo "ensure-services: starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  wait_port 6379 Redis 30 || true
fi

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$version" ]; then
    echo "ensure-services: starting PostgreSQL $version" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port 5432 PostgreSQL 60 || true
  fi
fi
