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
	first := []string{"msgs/s", "MB/s", "p50_ms", "p99_ms", "ns/op"}
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

func render(w io.Writer, rows []row, units []string) {
	base := map[string]float64{} // group+config -> ns/op of the first implementation listed
	for _, r := range rows {
		k := r.group + "|" + r.config
		if _, ok := base[k]; !ok && r.impl != "" {
			base[k] = r.metrics["ns/op"]
		}
	}
	header := append([]string{"benchmark", "impl", "config"}, units...)
	header = append(header, "time vs first")
	table := [][]string{header}
	for _, r := range rows {
		line := []string{r.group, r.impl, r.config}
		for _, u := range units {
			v, ok := r.metrics[u]
			line = append(line, format(v, ok))
		}
		ratio := ""
		if b := base[r.group+"|"+r.config]; b > 0 && r.impl != "" {
			ratio = fmt.Sprintf("%.2fx", r.metrics["ns/op"]/b)
		}
		table = append(table, append(line, ratio))
	}
	widths := make([]int, len(header))
	for _, l := range table {
		for i, c := range l {
			widths[i] = max(widths[i], len(c))
		}
	}
	for i, l := range table {
		for j, c := range l {
			if j < 3 {
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
