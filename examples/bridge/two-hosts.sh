#!/usr/bin/env bash
# Two "hosts" on one machine: two network namespaces joined by a veth pair (10.231.250.1 and
# .2, addresses that exist only inside them), each with its own smemd and smem-bridge. Host A
# runs the NATS server and exports its ring "jobs"; host B imports it into its own "jobs".
# As root (namespaces, veth), from the top of the tree after `make`:
#   examples/bridge/two-hosts.sh
# On each host the bridge is one command:
#   host A: smem-bridge -c examples/bridge/hostA.conf
#   host B: smem-bridge -c examples/bridge/hostB.conf
# The namespaces are held by processes, not names: when the script ends (or is killed) they
# and the veth pair disappear with them.
set -eu
# Each host runs its broker explicitly: never auto-start one anywhere else.
export SMEM_NO_AUTOSTART=1
BUILD=${BUILD:-build/default}
T=$(cd "$BUILD/tools" && pwd)
E=$(cd "$BUILD/examples" && pwd)
D=$(mktemp -d /tmp/smem-two-hosts.XXXXXX)
pids=()
cleanup() {
	# Last started, first stopped: bridges before brokers, brokers before namespaces.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
in_ns() { local h=$1; shift; nsenter -t "$h" -n "$@"; }

unshare --net sleep 600 & A=$!; pids+=("$A")
unshare --net sleep 600 & B=$!; pids+=("$B")
while [ "$(readlink /proc/$A/ns/net)" = "$(readlink /proc/self/ns/net)" ] ||
      [ "$(readlink /proc/$B/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.01; done
ip link add smdemoA netns "$A" type veth peer name smdemoB netns "$B"
in_ns "$A" ip addr add 10.231.250.1/30 dev smdemoA
in_ns "$B" ip addr add 10.231.250.2/30 dev smdemoB
for h in "$A" "$B"; do in_ns "$h" ip link set lo up; done
in_ns "$A" ip link set smdemoA up
in_ns "$B" ip link set smdemoB up

# Each host: its own broker.
for h in A B; do
	pid=${!h}
	SMEM_BROKER=$D/$h.sock nsenter -t "$pid" -n "$T/smemd" --socket "$D/$h.sock" --foreground &
	pids+=("$!")
done
nsenter -t "$A" -n nats-server -a 10.231.250.1 -p 4222 -l "$D/nats.log" & pids+=("$!")
while ! grep -q "Server is ready" "$D/nats.log" 2>/dev/null; do sleep 0.05; done
while [ ! -S "$D/A.sock" ] || [ ! -S "$D/B.sock" ]; do sleep 0.05; done

# Host B: the bridge, then a consumer of its own ring.
SMEM_BROKER=$D/B.sock nsenter -t "$B" -n "$T/smem-bridge" -c examples/bridge/hostB.conf &
pids+=("$!")
SMEM_BROKER=$D/B.sock nsenter -t "$B" -n "$E/bridge_demo" consume jobs 5 & consumer=$!
# Host A: a producer of its ring, then the bridge.
SMEM_BROKER=$D/A.sock nsenter -t "$A" -n "$E/bridge_demo" produce jobs 5 & producer=$!
sleep 0.3
SMEM_BROKER=$D/A.sock nsenter -t "$A" -n "$T/smem-bridge" -c examples/bridge/hostA.conf &
pids+=("$!")
wait "$consumer"
wait "$producer"
echo "two-hosts: host B received host A's ring across the veth link"
