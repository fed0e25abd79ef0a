# Round-trip latency distributions (ping-pong of 1 KiB between two processes on two cores):
# the fraction of round trips slower than x, for sleeping transports and for spinning ones.
# gnuplot -e "dir='DATA'; out='FILE.png'" bench/plot/latency.gp
# (data: DATA/cdf-block.dat and DATA/cdf-spin.dat from ringbench --cdf)
set terminal pngcairo size 1200,520 font "sans,10"
set output out
set multiplot layout 1,2 title "Round-trip time distribution, 1 KiB ping-pong, cross-core processes"
set logscale xy
set format y "10^{%L}"
set xlabel "round trip, µs"
set ylabel "fraction of round trips slower"
set yrange [5e-5:1.2]
set grid
set key top right
set style data lines
sel(t, w) = sprintf("< awk '$1==\"pingpong\" && $2==\"%s\" && $3==1024 && $5<1 {print $6/1000, 1-$5}' %s/cdf-%s.dat", t, dir, w)
set title "Sleeping waits (smem --wait block)"
plot for [t in "smem futex eventfd pipe unix seqpacket boost_mq zmq_ipc"] sel(t, "block") title t noenhanced lw (t eq "smem" ? 3 : 1.5)
set title "Spinning (smem --wait spin, naive ring)"
plot for [t in "smem naive"] sel(t, "spin") title t noenhanced lw (t eq "smem" ? 3 : 1.5)
unset multiplot
