#!/usr/bin/env bash
# MongoDB healthcheck that also initiates the single-node replica set, idempotently.
#
# Each run: if the replica set has no configuration yet (first start, error NotYetInitialized),
# call rs.initiate with this one member; then require that the server answers
# db.adminCommand('ping') and is the writable primary. Only then is the container "healthy", so
# services that `depends_on: condition: service_healthy` start against a server that accepts writes.
#
# The member is announced as RS_HOST (default mongo:27017, the service name on the compose
# network): clients inside compose connect with replicaSet=rs0; clients on the host reach it via
# 127.0.0.1 with directConnection=true (they cannot resolve "mongo").
set -euo pipefail

: "${MONGO_INITDB_ROOT_USERNAME:?is not set in the mongo container (see .env.example)}"
: "${MONGO_INITDB_ROOT_PASSWORD:?is not set in the mongo container (see .env.example)}"
export RS_NAME="${RS_NAME:-rs0}"
export RS_HOST="${RS_HOST:-mongo:27017}"

read -r -d '' script <<'JS' || true
const rsName = process.env.RS_NAME;
const rsHost = process.env.RS_HOST;
let configured = true;
try {
  rs.status();
} catch (e) {
  if (e.codeName !== 'NotYetInitialized') throw e;
  configured = false;
}
if (!configured) {
  try {
    rs.initiate({ _id: rsName, members: [{ _id: 0, host: rsHost }] });
    print(`initiated replica set ${rsName} with member ${rsHost}`);
  } catch (e) {
    if (e.codeName !== 'AlreadyInitialized') throw e; // another healthcheck run won the race
  }
}
if (db.adminCommand('ping').ok !== 1) {
  print('ping failed');
  quit(1);
}
for (let i = 0; i < 20 && !db.hello().isWritablePrimary; i++) sleep(500);
if (!db.hello().isWritablePrimary) {
  print('replica set member is not (yet) the writable primary');
  quit(1);
}
JS

exec mongosh --quiet --norc --host 127.0.0.1 --port 27017 \
  --username "$MONGO_INITDB_ROOT_USERNAME" --password "$MONGO_INITDB_ROOT_PASSWORD" \
  --authenticationDatabase admin --eval "$script"
