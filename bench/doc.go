// Package bench holds Osprey's benchmarks: codec throughput against a peer library, MLLP
// round trips against bare TCP, durable ingest with group commit against one write per
// message, store writes and searches, and the `osprey` binary itself in a process of its own.
//
// BenchmarkServe builds cmd/osprey, or measures the binary OSPREY_BENCH_BINARY names, so that
// two versions can be compared in the same hour. OSPREY_BENCH_PROFILE_DIR=DIR has it write a
// CPU profile of the server process per run, taken through the admin API.
//
// `make bench` runs them and prints a table (bench/cmd/benchtable). Benchmarks report rates
// with b.ReportMetric ("msgs/s", "p99_ms"); sub-benchmarks are named <impl>/<config> so the
// table can compare implementations that ran the same configuration in the same run.
package bench
