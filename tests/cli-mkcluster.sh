#!/bin/bash
# tools/mkcluster writes a consistent cluster: configs, private keys with
# mode 600, distinct ports, and validator sets whose public keys are those of
# the key files (as qsctl pubkey reads them). Run from the repository root;
# B names the build directory (default build).
set -eu

B=${B:-build}
root=$(cd "$(dirname "$0")/.." && pwd -P)
qsctl=$(realpath -m -- "$B/qsctl")
qsd=$(realpath -m -- "$B/qsd")
mkcluster=$root/tools/mkcluster
n=4

fail() {
	echo "FAIL cli-mkcluster: $*" >&2
	exit 1
}

[ -x "$qsctl" ] || fail "$qsctl not built"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cli-mkcluster.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
dir=$tmp/c

QSCTL=$qsctl "$mkcluster" "$n" "$dir" >"$tmp/out" 2>"$tmp/err" ||
	fail "mkcluster $n $dir exited $?: $(cat "$tmp/err")"

# Value of a "key: value" line, without quotes.
value() {
	sed -E 's/^[^:]*: *"?([^"]*)"?$/\1/'
}

configs=0
keys=0
for ((i = 0; i < n; i++)); do
	node=$dir/v$i
	[ -f "$node/qsd.yaml" ] || fail "$node/qsd.yaml missing"
	[ -d "$node/data" ] || fail "$node/data missing"
	[ -z "$(ls -A "$node/data")" ] || fail "$node/data not empty"
	configs=$((configs + 1))
	for k in network signing; do
		f=$node/keys/$k.key
		[ -f "$f" ] || fail "$f missing"
		mode=$(stat -c %a "$f")
		[ "$mode" = 600 ] || fail "$f has mode $mode, want 600"
		keys=$((keys + 1))
	done
done
[ "$configs" -eq 4 ] || fail "$configs configs, want 4"
[ "$keys" -eq 8 ] || fail "$keys key files, want 8"

# Peer and metrics ports: 2n distinct; RPC sockets: n distinct, absolute.
ports=$(grep -hE '^ *listen: ' "$dir"/v*/qsd.yaml | value | sed 's/.*://')
[ "$(echo "$ports" | wc -l)" -eq $((2 * n)) ] || fail "want $((2 * n)) listen lines: $ports"
[ "$(echo "$ports" | sort -u | wc -l)" -eq $((2 * n)) ] || fail "ports not distinct: $ports"
socks=$(grep -hE '^  socket: ' "$dir"/v*/qsd.yaml | value)
[ "$(echo "$socks" | sort -u | wc -l)" -eq "$n" ] || fail "RPC sockets not distinct: $socks"
for s in $socks; do
	case $s in
	/*) ;;
	*) fail "RPC socket $s is not an absolute path" ;;
	esac
done

# Public keys as qsctl reads them from the private key files.
net=()
sign=()
for ((i = 0; i < n; i++)); do
	net[i]=$("$qsctl" pubkey "$dir/v$i/keys/network.key") || fail "qsctl pubkey v$i network"
	sign[i]=$("$qsctl" pubkey "$dir/v$i/keys/signing.key") || fail "qsctl pubkey v$i signing"
	[[ ${net[i]} =~ ^[0-9a-f]{64}$ ]] || fail "bad pubkey output '${net[i]}'"
done
[ "$(printf '%s\n' "${net[@]}" "${sign[@]}" | sort -u | wc -l)" -eq $((2 * n)) ] ||
	fail "the $((2 * n)) keys are not distinct"

for ((i = 0; i < n; i++)); do
	cfg=$dir/v$i/qsd.yaml
	mapfile -t names < <(grep -E '^  - name: ' "$cfg" | value)
	mapfile -t cnet < <(grep -E '^    network_key: ' "$cfg" | value)
	mapfile -t csign < <(grep -E '^    signing_key: ' "$cfg" | value)
	mapfile -t addrs < <(grep -E '^    address: ' "$cfg" | value)
	mapfile -t powers < <(grep -E '^    voting_power: ' "$cfg" | value)
	[ ${#names[@]} -eq "$n" ] || fail "$cfg lists ${#names[@]} validators, want $n"
	for ((j = 0; j < n; j++)); do
		[ "${names[j]}" = "v$j" ] || fail "$cfg: validator $j named ${names[j]}"
		[ "${cnet[j]}" = "${net[j]}" ] || fail "$cfg: v$j network_key ${cnet[j]} != ${net[j]}"
		[ "${csign[j]}" = "${sign[j]}" ] || fail "$cfg: v$j signing_key ${csign[j]} != ${sign[j]}"
		[ "${powers[j]}" = 1 ] || fail "$cfg: v$j voting_power ${powers[j]}"
	done
	listen=$(grep -E '^listen: ' "$cfg" | value)
	[ "$listen" = "${addrs[i]}" ] || fail "$cfg: listen $listen != own address ${addrs[i]}"
	[ "$(grep -E '^network_key: ' "$cfg" | value)" = "$dir/v$i/keys/network.key" ] ||
		fail "$cfg: network_key path"
	[ "$(grep -E '^signing_key: ' "$cfg" | value)" = "$dir/v$i/keys/signing.key" ] ||
		fail "$cfg: signing_key path"
	grep -qx "  allowed_uids: \[$(id -u)\]" "$cfg" || fail "$cfg: allowed_uids"
	grep -qx 'chain_id: 1' "$cfg" || fail "$cfg: chain_id"
	# The daemon, once built, must accept what mkcluster writes.
	if [ -x "$qsd" ]; then
		"$qsd" -t -c "$cfg" >"$tmp/qsd.out" 2>&1 ||
			fail "qsd -t -c $cfg refused it: $(cat "$tmp/qsd.out")"
	fi
done

# Refusals: an existing cluster, N out of range, a socket path over sun_path.
if QSCTL=$qsctl "$mkcluster" "$n" "$dir" >/dev/null 2>&1; then
	fail "mkcluster overwrote an existing cluster"
fi
for bad in 0 65 x; do
	if QSCTL=$qsctl "$mkcluster" "$bad" "$tmp/bad" >/dev/null 2>&1; then
		fail "mkcluster accepted N=$bad"
	fi
done
long=$tmp/$(printf 'd%.0s' $(seq 1 100))
if QSCTL=$qsctl "$mkcluster" 2 "$long" >/dev/null 2>"$tmp/err"; then
	fail "mkcluster accepted a socket path over 107 bytes"
fi
grep -q '107' "$tmp/err" || fail "no sun_path message: $(cat "$tmp/err")"
if [ -e "$tmp/bad/v0" ] || [ -e "$long" ]; then
	fail "a refused run left files behind"
fi

# qsctl refuses a key others may read.
chmod 640 "$dir/v0/keys/signing.key"
if "$qsctl" pubkey "$dir/v0/keys/signing.key" >/dev/null 2>"$tmp/err"; then
	fail "qsctl pubkey accepted a mode 640 key"
fi
grep -q 'chmod 600' "$tmp/err" || fail "no chmod hint: $(cat "$tmp/err")"

echo "PASS cli-mkcluster"
