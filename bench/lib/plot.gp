# gnuplot -e "dir='WORK_DIR'; out='latest.png'" bench/lib/plot.gp
load dir.'/plot.refs.gp'
set terminal pngcairo size 1100,900 font ",10" noenhanced
set output out
set multiplot layout 2,1 title "qsd, one node, 64 KiB batches from 3 peers: ".host
set key outside right top
set grid
set xlabel "offered load (batches/s)"
set ylabel "durable acks/s"
set yrange [0:*]
set xrange [0:*]
plot dir.'/plot.loads.dat' using 2:3 with linespoints lw 2 pt 7 title "qsd acks/s", \
     dir.'/plot.loads.dat' using 2:3:1 with labels offset 0,1 font ",8" notitle, \
     dbb32 with lines dt 2 lw 2 title "db_bench fillrandom sync batch 32", \
     dbb1 with lines dt 3 lw 2 title "db_bench fillrandom sync batch 1", \
     fioiops with lines dt 4 lw 2 title "fio 64K fdatasync IOPS", \
     x with lines lc rgb "gray" title "acks = offered"
set ylabel "send to SignedBatchInfo (ms)"
set logscale y
set yrange [*:*]
plot dir.'/plot.loads.dat' using 2:4 with linespoints lw 2 pt 7 title "qsd p50", \
     dir.'/plot.loads.dat' using 2:5 with linespoints lw 2 pt 5 title "qsd p99", \
     dir.'/plot.loads.dat' using 2:6 with linespoints lw 1 pt 4 title "qsd p999", \
     fiop99 / 1000 with lines dt 4 lw 2 title "fio 64K fdatasync p99", \
     12 * fiop99 / 1000 with lines dt 2 lw 2 title "target: 12x fio p99"
unset multiplot
