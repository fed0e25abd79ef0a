# bench/run: the seed-chart rows of ringbench JSON lines as gnuplot data, one file per node
# size (bw-1024.dat, bw-1048576.dat), each with four indexed blocks of "nodes GB/s":
# smem 1/1, smem 2/2, smem 4/4, naive 1/1 (a block with no data holds one NaN point).
function get(line, key) {
	if (!match(line, "\"" key "\":(\"[^\"]*\"|[^,}]*)"))
		return ""
	v = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
	gsub(/"/, "", v)
	return v
}
get($0, "suite") == "seed" {
	bw[get($0, "size"), get($0, "transport"), get($0, "writers"), get($0, "nodes")] = get($0, "gb_per_s")
}
END {
	split("1024 1048576", sizes, " ")
	split("smem:1 smem:2 smem:4 naive:1", series, " ")
	split("2 5 10 20 50", nodes, " ")
	for (s = 1; s <= 2; s++) {
		f = dir "/bw-" sizes[s] ".dat"
		printf "" > f
		for (k = 1; k <= 4; k++) {
			split(series[k], tw, ":")
			any = 0
			for (m = 1; m <= 5; m++)
				if ((sizes[s], tw[1], tw[2], nodes[m]) in bw) {
					print nodes[m], bw[sizes[s], tw[1], tw[2], nodes[m]] > f
					any = 1
				}
			if (!any)
				print "NaN NaN" > f
			print "\n" > f
		}
		close(f)
	}
}
