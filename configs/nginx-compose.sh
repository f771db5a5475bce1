#!/bin/sh
# nginx for compose.yaml: nginx looks the replicas' names up only when it loads its configuration,
# and a replica that restarts can come back at another address; so this reloads it whenever the
# names' addresses change. Arguments: the replicas' names.
nginx -g 'daemon off;' &
pid=$!
trap 'nginx -s quit; wait $pid; exit 0' TERM INT
seen=$(getent hosts "$@")
while kill -0 "$pid" 2>/dev/null; do
    sleep 5 & wait $!
    now=$(getent hosts "$@")
    if [ "$now" != "$seen" ]; then
        seen=$now
        nginx -s reload  # refused while a name is missing: the running configuration stays
    fi
done
exit 1
