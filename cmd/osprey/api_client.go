package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// The admin API client shared by the commands that talk to a running `osprey serve`
// (messages, deadletters, reload). Each command registers the common flags with
// addAPIFlags and gets a client from them.

const defaultAPI = "http://127.0.0.1:8080"

// apiFlags are --api and --token. Their environment fallbacks are read after parsing, so
// `-h` never prints a token taken from the environment.
type apiFlags struct {
	url, token string
}

func addAPIFlags(fs *flag.FlagSet) *apiFlags {
	a := &apiFlags{}
	fs.StringVar(&a.url, "api", "", "admin API base URL (default $OSPREY_API, else "+defaultAPI+")")
	fs.StringVar(&a.token, "token", "", "admin API bearer token (default $OSPREY_TOKEN)")
	return a
}

func (a *apiFlags) client() (*apiClient, error) {
	base := a.url
	if base == "" {
		base = os.Getenv("OSPREY_API")
	}
	if base == "" {
		base = defaultAPI
	}
	token := a.token
	if token == "" {
		token = os.Getenv("OSPREY_TOKEN")
	}
	return newAPIClient(base, token)
}

// apiClient calls the admin API with a bearer token and turns its error bodies into
// *apiError.
type apiClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

func newAPIClient(base, token string) (*apiClient, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin API URL %q: want http://host:port or https://host:port", base)
	}
	// A reload can take as long as starting every channel; anything longer is a hung server.
	return &apiClient{base: u, token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// apiLint is one configuration finding in a 422 answer.
type apiLint struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Level   string `json:"level"`
	Type    string `json:"type"`
	Message string `json:"message"`
	Text    string `json:"text"`
}

// apiError is an error answer of the admin API: {"error": "...", "status": N, "lints": [...]}.
type apiError struct {
	Status  int
	Message string
	Lints   []apiLint
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("admin API: %d %s", e.Status, e.Message)
	switch e.Status {
	case http.StatusUnauthorized:
		msg += " (pass --token or set OSPREY_TOKEN)"
	case http.StatusForbidden:
		msg += " (this needs a token with role admin)"
	}
	return msg
}

// get and post decode a JSON answer into out (nil: discard it) and return the raw body,
// for --json.
func (c *apiClient) get(ctx context.Context, path string, q url.Values, out any) ([]byte, error) {
	return c.do(ctx, http.MethodGet, path, q, out)
}

func (c *apiClient) post(ctx context.Context, path string, q url.Values, out any) ([]byte, error) {
	return c.do(ctx, http.MethodPost, path, q, out)
}

func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, out any) ([]byte, error) {
	u := c.base.JoinPath(path)
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is said below, once
		}
		return nil, fmt.Errorf("admin API at %s: %w (is osprey serve running? set --api or OSPREY_API)", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("admin API: read %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		ae := &apiError{Status: resp.StatusCode}
		var eb struct {
			Error string    `json:"error"`
			Lints []apiLint `json:"lints"`
		}
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			ae.Message, ae.Lints = eb.Error, eb.Lints
		} else {
			ae.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		}
		return body, ae
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return body, fmt.Errorf("admin API: %s %s: unexpected answer: %w", method, path, err)
		}
	}
	return body, nil
}

// printJSON writes an API answer indented, for --json.
func printJSON(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		_, err = w.Write(body)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// parseInterspersed parses flags that may come before or after the positional arguments
// (`osprey messages show ID --json`), which flag.Parse alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil // after "--" everything is an argument
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// table prints aligned columns, two spaces apart, without trailing blanks.
type table struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(w io.Writer) *table {
	t := &table{out: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.SplitAfter(t.buf.String(), "\n") {
		if line == "" {
			continue
		}
		nl := strings.HasSuffix(line, "\n")
		line = strings.TrimRight(line, " \n")
		if nl {
			line += "\n"
		}
		if _, err := io.WriteString(t.out, line); err != nil {
			return err
		}
	}
	t.buf.Reset()
	return nil
}

// listPage is one page of a list endpoint, as the API answers it.
type listPage[T any] struct {
	Items []T
	Next  string
}

// printList fetches one page from path and prints it: the API's JSON as it came, or a table
// whose rows row makes, then "none" when the page is empty and the cursor of the next page.
// field is the JSON member holding the items ("messages", "dead_letters").
func printList[T any](ctx context.Context, env *cliEnv, api *apiFlags, path string, q url.Values, asJSON bool,
	field string, header []string, row func(T) []string, none string) error {
	client, err := api.client()
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	body, err := client.get(ctx, path, q, &raw)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.stdout, body)
	}
	var page listPage[T]
	if items, ok := raw[field]; ok {
		if err := json.Unmarshal(items, &page.Items); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if next, ok := raw["next"]; ok {
		_ = json.Unmarshal(next, &page.Next)
	}
	tw := newTable(env.stdout)
	tw.row(header...)
	for _, it := range page.Items {
		tw.row(row(it)...)
	}
	if err := tw.flush(); err != nil {
		return err
	}
	if len(page.Items) == 0 {
		fmt.Fprintln(env.stderr, none)
	}
	if page.Next != "" {
		fmt.Fprintf(env.stderr, "more: add --cursor %s\n", page.Next)
	}
	return nil
}
