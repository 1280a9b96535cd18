package conformance

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report as a table, one check a row, and a closing verdict line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CHECK\tRESULT\tDETAIL\n")
	for _, c := range r.Checks {
		res := "PASS"
		if !c.Pass {
			res = "FAIL"
		}
		// A tab or newline in a detail (a plugin's own text) would break the columns.
		detail := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c.Detail)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, res, detail)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("conformance: write table: %w", err)
	}
	failed := len(r.Failed())
	var err error
	switch {
	case len(r.Checks) == 0:
		_, err = fmt.Fprintf(w, "\nplugin %s: FAIL, nothing was checked\n", r.Plugin)
	case failed == 0:
		_, err = fmt.Fprintf(w, "\nplugin %s: PASS, all %d checks\n", r.Plugin, len(r.Checks))
	default:
		_, err = fmt.Fprintf(w, "\nplugin %s: FAIL, %d of %d checks\n", r.Plugin, failed, len(r.Checks))
	}
	if err != nil {
		return fmt.Errorf("conformance: write table: %w", err)
	}
	return nil
}
