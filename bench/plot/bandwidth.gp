# The seed's bandwidth chart, redone: ring GB/s against node count, 1 KiB and 1 MiB nodes,
# 1/1, 2/2 and 4/4 writers/readers, with the naive spinning ring (1/1) from the same run.
# gnuplot -e "dir='DATA'; out='FILE.png'" bench/plot/bandwidth.gp   (data: extract.awk)
set terminal pngcairo size 1200,560 font "sans,10"
set output out
set multiplot layout 1,2 title "smem ring bandwidth between processes on two cores (one way; every byte written and read)"
set logscale x
set xtics ("2" 2, "5" 5, "10" 10, "20" 20, "50" 50)
set xrange [1.7:60]
set xlabel "nodes in the ring"
set ylabel "GB/s"
set yrange [0:*]
set grid
set key outside below horizontal maxrows 2 spacing 1.2
set bmargin 7
set style data linespoints
do for [s in "1024 1048576"] {
	set title (s eq "1024" ? "1 KiB nodes (messages)" : "1 MiB nodes (messages)")
	f = dir."/bw-".s.".dat"
	plot f index 0 title "smem 1 writer / 1 reader" lw 2 pt 7, \
	     f index 1 title "smem 2 / 2" lw 2 pt 5, \
	     f index 2 title "smem 4 / 4" lw 2 pt 9, \
	     f index 3 title "naive spinning ring 1 / 1" lw 2 dt 2 pt 6 lc rgb "gray40"
}
unset multiplot
