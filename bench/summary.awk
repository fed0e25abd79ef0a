# bench/run's markdown summary of ringbench JSON rows (one object per line, tagged "suite"):
# the seed's chart as a table, the stream, latency and RPC tables, and the targets of the
# ring (issue 4) and RPC (issue 5) issues, each marked met or not met with its figures.

function get(line, key,    m, v) {
	if (!match(line, "\"" key "\":(\"[^\"]*\"|[^,}]*)"))
		return ""
	v = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
	gsub(/"/, "", v)
	return v == "null" ? "" : v
}
function rate(v) {
	if (v == "") return "-"
	v += 0
	if (v >= 1e6) return sprintf("%.2fM", v / 1e6)
	if (v >= 1e3) return sprintf("%.1fk", v / 1e3)
	return sprintf("%.0f", v)
}
function us(v) { return v == "" ? "-" : sprintf("%.2f", (v + 0) / 1000) }
function g(v, f) { return v == "" ? "-" : sprintf(f, v) }
function sz(v) { v += 0; return v >= 1048576 ? (v / 1048576) " MiB" : v >= 1024 ? (v / 1024) " KiB" : v " B" }
function cpu_us(v) { return v == "" ? "-" : sprintf("%.3g", v * 1e6) }
function yes(ok) { return ok ? "**met**" : "**not met**" }

{
	n++
	row[n] = $0
	suite[n] = get($0, "suite")
}

END {
	# ---- the seed's chart ----
	print "### Ring bandwidth (the seed's chart): GB/s, one way, payload written and read in full"
	print ""
	print "| node size | transport | writers/readers | 2 nodes | 5 nodes | 10 nodes | 20 nodes | 50 nodes |"
	print "|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) {
		if (suite[i] != "seed") continue
		k = get(row[i], "size") SUBSEP get(row[i], "transport") SUBSEP get(row[i], "writers")
		if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
		bw[k, get(row[i], "nodes")] = get(row[i], "gb_per_s")
	}
	for (j = 1; j <= nk; j++) {
		split(order[j], p, SUBSEP)
		printf "| %s | %s | %s/%s |", sz(p[1]), p[2], p[3], p[3]
		split("2 5 10 20 50", nds, " ")
		for (m = 1; m <= 5; m++) {
			printf " %s |", g(bw[order[j], nds[m]], "%.2f")
		}
		print ""
	}
	print ""

	# ---- stream ----
	print "### Streaming, 20 nodes, 1 writer and 1 reader (cross-core processes)"
	print ""
	print "| size | transport | wait | msgs/s (min..max) | GB/s | syscalls/msg | CPU µs/msg | × smem msgs/s |"
	print "|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) {
		if (suite[i] != "stream") continue
		r = row[i]
		printf "| %s | %s | %s | %s (%s..%s) | %s | %s%s | %s | %s |\n", sz(get(r, "size")),
			get(r, "transport"), get(r, "wait"), rate(get(r, "msgs_per_s")),
			rate(get(r, "msgs_per_s_min")), rate(get(r, "msgs_per_s_max")),
			g(get(r, "gb_per_s"), "%.3f"), g(get(r, "syscalls_per_msg"), "%.3g"),
			get(r, "syscalls_src") == "counted" ? "*" : "",
			cpu_us(get(r, "cpu_s_per_msg")), g(get(r, "ratio_to_smem"), "%.3g")
	}
	print ""

	# ---- latency ----
	print "### Round trips (ping-pong between processes on two cores; \"1 core\": both on CPU 0): µs"
	print ""
	print "| size | transport | wait | p50 | p99 | p99.9 | round trips/s | syscalls/rt | CPU µs/rt | × smem p50 |"
	print "|---|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) {
		if (suite[i] != "latency" && suite[i] != "samecore") continue
		r = row[i]
		printf "| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sz(get(r, "size")),
			get(r, "transport"), suite[i] == "samecore" ? ", 1 core" : "", get(r, "wait"), us(get(r, "rtt_ns_p50")),
			us(get(r, "rtt_ns_p99")), us(get(r, "rtt_ns_p999")), rate(get(r, "msgs_per_s")),
			g(get(r, "syscalls_per_msg"), "%.3g"), cpu_us(get(r, "cpu_s_per_msg")),
			g(get(r, "rtt_ratio_to_smem"), "%.3g")
	}
	print ""

	# ---- rpc ----
	print "### RPC calls (request of the given size, 8-byte response; baselines: request/response ping-pongs)"
	print ""
	print "| size | transport | wait | in flight/channels | calls/s (min..max) | p50 µs | p99 µs | p99.9 µs | syscalls/call | × smem calls/s |"
	print "|---|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) {
		if (suite[i] != "rpc") continue
		r = row[i]
		printf "| %s | %s | %s | %s/%s | %s (%s..%s) | %s | %s | %s | %s%s | %s |\n",
			sz(get(r, "size")), get(r, "transport"), get(r, "wait"), get(r, "inflight"),
			get(r, "channels"), rate(get(r, "msgs_per_s")), rate(get(r, "msgs_per_s_min")),
			rate(get(r, "msgs_per_s_max")), us(get(r, "rtt_ns_p50")),
			us(get(r, "rtt_ns_p99")), us(get(r, "rtt_ns_p999")),
			g(get(r, "syscalls_per_msg"), "%.3g"),
			get(r, "syscalls_src") == "counted" ? "*" : "", g(get(r, "ratio_to_smem"), "%.3g")
	}
	print ""
	print "syscalls: counted by perf (every system call of every worker) unless marked *, which"
	print "are counted by ringbench (RPC: the library's io_uring_enter/futex_waitv calls only)."
	print ""

	# ---- targets ----
	for (i = 1; i <= n; i++) {
		r = row[i]; t = get(r, "transport"); s = get(r, "size") + 0; w = get(r, "wait")
		# smem's auto row is compared with the naive ring of its own run (the first naive
		# row), its spin row with the naive ring of the spin run (the last one)
		if (suite[i] == "stream" && s == 1024 && t != "naive") st1[t, w] = get(r, "msgs_per_s") + 0
		if (suite[i] == "stream" && s == 1024 && t == "naive" && !(("naive", "first") in st1)) { st1["naive", "first"] = 1; st1["naive", "auto"] = get(r, "msgs_per_s") + 0 }
		if (suite[i] == "stream" && s == 1024 && t == "naive") st1["naive", "last"] = get(r, "msgs_per_s") + 0
		if (suite[i] == "stream" && s == 1024 && t == "smem" && w == "auto") sys1 = get(r, "syscalls_per_msg") + 0
		if (suite[i] == "stream" && s == 1048576 && t == "smem") st1m[w] = get(r, "gb_per_s") + 0
		if (suite[i] == "stream" && s == 1048576 && t == "naive") { st1m["naive" (("naive", "auto") in st1m ? "spin" : "auto")] = get(r, "gb_per_s") + 0; st1m["naive", "auto"] = 1 }
		if (suite[i] == "latency" && s == 1024 && w == "block" && t == "smem") ppb = get(r, "rtt_ns_p50") + 0
		if (suite[i] == "latency" && s == 1024 && t == "futex") ppf = get(r, "rtt_ns_p50") + 0
		if (suite[i] == "latency" && s == 1024 && w == "spin" && t == "smem") pps = get(r, "rtt_ns_p50") + 0
		if (suite[i] == "rpc" && t == "smem") {
			inf = get(r, "inflight") + 0; ch = get(r, "channels") + 0
			if (s == 1024 && w == "spin" && get(r, "msgs_per_s") + 0 > rpc1k + 0) { rpc1k = get(r, "msgs_per_s") + 0; rpc1k_inf = inf }
			if (s == 524288 && get(r, "msgs_per_s") + 0 > rpc512 + 0) { rpc512 = get(r, "msgs_per_s") + 0; rpc512_how = w ", " inf " in flight" }
			if (s == 1024 && w == "block" && inf == 1) rpcb = get(r, "rtt_ns_p50") + 0
			if (s == 1024 && w == "spin" && inf == 1) rpcs = get(r, "rtt_ns_p50") + 0
			if (inf == 64 && ch == 8) enters = get(r, "syscalls_per_msg") + 0
		}
		if (suite[i] == "rpc" && s == 1024 && w == "block" && t == "futex") rpcf = get(r, "rtt_ns_p50") + 0
		if (suite[i] == "rpc" && s == 1024 && t == "unix") rpcu = get(r, "rtt_ns_p50") + 0
	}
	print "### Targets (issues 4 and 5), from this run"
	print ""
	print "| target | figure | |"
	print "|---|---|---|"
	if (st1["naive", "auto"] != "") printf "| ring 1 KiB 1w/1r ≥ 0.8× naive ring msgs/s (smem --wait auto) | %.2f× | %s |\n", st1["smem", "auto"] / st1["naive", "auto"], yes(st1["smem", "auto"] >= 0.8 * st1["naive", "auto"])
	if (st1["smem", "spin"] != "") printf "| ring 1 KiB 1w/1r ≥ 0.8× naive ring msgs/s (smem --wait spin) | %.2f× | %s |\n", st1["smem", "spin"] / st1["naive", "last"], yes(st1["smem", "spin"] >= 0.8 * st1["naive", "last"])
	if (st1["pipe", "block"] != "") printf "| ring 1 KiB 1w/1r ≥ 8× pipe msgs/s | %.1f× | %s |\n", st1["smem", "auto"] / st1["pipe", "block"], yes(st1["smem", "auto"] >= 8 * st1["pipe", "block"])
	if (st1m["naiveauto"] != "") printf "| ring 1 MiB nodes (20) ≥ 0.8× naive GB/s (smem --wait auto) | %.2f× (%.2f vs %.2f GB/s) | %s |\n", st1m["auto"] / st1m["naiveauto"], st1m["auto"], st1m["naiveauto"], yes(st1m["auto"] >= 0.8 * st1m["naiveauto"])
	if (st1m["spin"] != "") printf "| ring 1 MiB nodes (20) ≥ 0.8× naive GB/s (smem --wait spin) | %.2f× (%.2f vs %.2f GB/s) | %s |\n", st1m["spin"] / st1m["naivespin"], st1m["spin"], st1m["naivespin"], yes(st1m["spin"] >= 0.8 * st1m["naivespin"])
	if (sys1 != "") printf "| streaming ≤ 0.01 syscalls/msg | %.4f | %s |\n", sys1, yes(sys1 <= 0.01)
	if (ppf != "") printf "| blocking ping-pong rtt ≤ 1.2× raw futex | %.2f× (%s vs %s µs p50) | %s |\n", ppb / ppf, us(ppb), us(ppf), yes(ppb <= 1.2 * ppf)
	if (pps != "") printf "| spinning ping-pong rtt ≤ 1.5 µs | %s µs p50 | %s |\n", us(pps), yes(pps <= 1500)
	if (rpc1k != "") printf "| RPC 1 KiB ≥ 500,000 calls/s, both sides busy | %s/s (%d in flight) | %s |\n", rate(rpc1k), rpc1k_inf, yes(rpc1k >= 500000)
	if (rpcf != "") printf "| RPC blocking rtt ≤ 1.2× raw futex | %.2f× (%s vs %s µs p50) | %s |\n", rpcb / rpcf, us(rpcb), us(rpcf), yes(rpcb <= 1.2 * rpcf)
	if (rpc512 != "") printf "| RPC 512 KiB ≥ 10,000 calls/s | %s/s (%s) | %s |\n", rate(rpc512), rpc512_how, yes(rpc512 >= 10000)
	if (enters != "") printf "| 64 calls in flight over 8 channels: < 1 io_uring_enter per 8 calls | %.4f per call | %s |\n", enters, yes(enters < 0.125)
	if (rpcu != "") printf "| RPC small-call rtt < UNIX socket request/response | %s vs %s µs p50 | %s |\n", us(rpcs), us(rpcu), yes(rpcs < rpcu)
}
