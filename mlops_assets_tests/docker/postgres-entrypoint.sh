#!/bin/sh
# The stand-in for the official postgres image's entrypoint (registry images cannot be pulled in
# the test's sandbox): the same environment contract, POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB, a cluster made on first start in PGDATA, password logins from the network.
set -eu
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | head -n 1)
PGDATA=${PGDATA:-/var/lib/postgresql/data}
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
as_postgres() { su postgres -s /bin/sh -c "$*"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile && chown postgres /tmp/pwfile
  as_postgres "$PGBIN/initdb -D '$PGDATA' -U '$POSTGRES_USER' --pwfile=/tmp/pwfile --auth-host=scram-sha-256 --auth-local=trust" >/dev/null
  rm /tmp/pwfile
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres "$PGBIN/pg_ctl -D '$PGDATA' -w -o '-c listen_addresses=' start" >/dev/null
  as_postgres "$PGBIN/createdb -U '$POSTGRES_USER' '${POSTGRES_DB:-$POSTGRES_USER}'" 2>/dev/null || true
  as_postgres "$PGBIN/pg_ctl -D '$PGDATA' -w stop" >/dev/null
fi
exec su postgres -s /bin/sh -c "exec $PGBIN/postgres -D '$PGDATA' -c listen_addresses='*'"
