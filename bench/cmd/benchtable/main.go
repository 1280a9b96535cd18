// Command benchtable turns `go test -bench` output into the table `make bench` prints: one
// row per benchmark, one column per metric, and for benchmarks that compare implementations
// side by side (sub-benchmarks Benchmark<Name>/<impl>/<config...>) a ratio of each row's
// time per operation to the first implementation listed for the same config.
//
// It reads the benchmark output on stdin and echoes nothing else, so a failing benchmark
// run still shows its error lines above the table.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

type row struct {
	group, impl, config string
	metrics             map[string]float64
}

func main() {
	rows, order, err := parse(os.Stdin, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	render(os.Stdout, rows, order)
}

// parse reads benchmark lines: "BenchmarkX/a/b-2  N  v1 unit1  v2 unit2 ...".
func parse(r io.Reader, passthrough io.Writer) ([]row, []string, error) {
	var rows []row
	units := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			if strings.HasPrefix(line, "---") || strings.Contains(line, "FAIL") || strings.Contains(line, "panic") || strings.HasPrefix(line, "    ") {
				fmt.Fprintln(passthrough, line)
			}
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		parts := strings.Split(strings.TrimPrefix(name, "Benchmark"), "/")
		rw := row{group: parts[0], metrics: map[string]float64{}}
		if len(parts) > 1 {
			rw.impl = parts[1]
			rw.config = strings.Join(parts[2:], "/")
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			rw.metrics[f[i+1]] = v
			units[f[i+1]] = true
		}
		rows = append(rows, rw)
	}
	return rows, unitOrder(units), sc.Err()
}

// unitOrder puts the headline metrics first.
func unitOrder(units map[string]bool) []string {
	first := []string{"msgs/s", "delivered/s", "MB/s", "p50_ms", "p99_ms", "ns/op"}
	var out []string
	for _, u := range first {
		if units[u] {
			out = append(out, u)
			delete(units, u)
		}
	}
	var rest []string
	for u := range units {
		rest = append(rest, u)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// render prints one table per benchmark, each with the metrics that benchmark reports, so
// that a codec's MB/s and an ingest's p99 do not share one unreadable width.
func render(w io.Writer, rows []row, units []string) {
	base := map[string]float64{} // group+config -> ns/op of the first implementation listed
	var groups []string
	byGroup := map[string][]row{}
	for _, r := range rows {
		k := r.group + "|" + r.config
		if _, ok := base[k]; !ok && r.impl != "" {
			base[k] = r.metrics["ns/op"]
		}
		if _, ok := byGroup[r.group]; !ok {
			groups = append(groups, r.group)
		}
		byGroup[r.group] = append(byGroup[r.group], r)
	}
	for gi, g := range groups {
		rs := byGroup[g]
		var cols []string
		for _, u := range units {
			for _, r := range rs {
				if _, ok := r.metrics[u]; ok {
					cols = append(cols, u)
					break
				}
			}
		}
		compare := false
		impls := map[string]bool{}
		for _, r := range rs {
			impls[r.impl] = true
		}
		compare = len(impls) > 1
		header := append([]string{g, "config"}, cols...)
		if compare {
			header = append(header, "time vs first")
		}
		table := [][]string{header}
		for _, r := range rs {
			line := []string{r.impl, r.config}
			for _, u := range cols {
				v, ok := r.metrics[u]
				line = append(line, format(v, ok))
			}
			if compare {
				ratio := ""
				if b := base[r.group+"|"+r.config]; b > 0 {
					ratio = fmt.Sprintf("%.2fx", r.metrics["ns/op"]/b)
				}
				line = append(line, ratio)
			}
			table = append(table, line)
		}
		if gi > 0 {
			fmt.Fprintln(w)
		}
		printTable(w, table)
	}
}

func printTable(w io.Writer, table [][]string) {
	widths := make([]int, len(table[0]))
	for _, l := range table {
		for i, c := range l {
			widths[i] = max(widths[i], len(c))
		}
	}
	for i, l := range table {
		for j, c := range l {
			if j < 2 {
				fmt.Fprintf(w, "%-*s  ", widths[j], c)
			} else {
				fmt.Fprintf(w, "%*s  ", widths[j], c)
			}
		}
		fmt.Fprintln(w)
		if i == 0 {
			for j := range l {
				fmt.Fprint(w, strings.Repeat("-", widths[j]), "  ")
			}
			fmt.Fprintln(w)
		}
	}
}

func format(v float64, ok bool) string {
	switch {
	case !ok:
		return ""
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}
