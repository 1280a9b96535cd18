package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/spec"
)

// testReg is a registry with a few connectors, so the tests do not depend on the real ones.
type testReg struct{ src, dst, maps []spec.Component }

func (r testReg) SourceSpec(n string) (spec.Component, bool)      { return find(r.src, n) }
func (r testReg) DestinationSpec(n string) (spec.Component, bool) { return find(r.dst, n) }
func (r testReg) SourceNames() []string                           { return names(r.src) }
func (r testReg) DestinationNames() []string                      { return names(r.dst) }
func (r testReg) MappingSpec(n string) (spec.Component, bool)     { return find(r.maps, n) }
func (r testReg) MappingNames() []string                          { return names(r.maps) }
func (r testReg) CheckMapping(string, *spec.Parsed) error         { return nil }

func find(cs []spec.Component, n string) (spec.Component, bool) {
	for _, c := range cs {
		if c.Name == n {
			return c, true
		}
	}
	return spec.Component{}, false
}

func names(cs []spec.Component) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return out
}

var reg = testReg{
	src: []spec.Component{
		{Name: "mllp", Fields: []spec.Field{
			spec.NewString("address", "").WithDefault("0.0.0.0:2575"),
			spec.NewInt("max_connections", "").WithDefault(0),
			spec.NewString("password", "").AsSecret().AsOptional().WithEnum("never-shown"),
		}},
		{Name: "http", Fields: []spec.Field{spec.NewString("path", "")}},
	},
	dst: []spec.Component{
		{Name: "mllp", Fields: []spec.Field{spec.NewString("address", "")}},
		{Name: "file", Fields: []spec.Field{spec.NewString("dir", "")}},
	},
}

// write creates files (name -> content) in a fresh folder and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// lintLines renders lints as validate prints them, with the temp folder cut off.
func lintLines(dir string, lints []spec.Lint) []string {
	var out []string
	for _, l := range lints {
		s := l.String()
		if l.Level == spec.LevelWarning {
			s = "warning: " + s
		}
		out = append(out, strings.ReplaceAll(s, dir+string(filepath.Separator), ""))
	}
	return out
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, lints := Load(path, reg)
	if c == nil || spec.HasErrors(lints) {
		t.Fatalf("Load: %s", strings.Join(lintLines(filepath.Dir(path), lints), "\n"))
	}
	return c
}

const goodChannel = `channels:
  - name: adt-in
    source:
      mllp: {address: "127.0.0.1:2575"}
    filter: msg.Type == "ADT"
    transform:
      - set: {path: PV1-3.1, value: ED}
    destinations:
      - name: ris
        mllp: {address: "ris:2575"}
        retry: {max_attempts: 3, initial_backoff: 2s}
        on_reject: dead_letter
        filter: msg.Event != "A08"
      - name: archive
        file: {dir: /var/archive}
    ordered_by: msg.Get("PID-3.1")
    dedupe: {window: 10m}
`

func TestLoadFile(t *testing.T) {
	dir := write(t, map[string]string{"osprey.yaml": "server:\n  data_dir: /srv/osprey\n  retention: 30d\n" + goodChannel})
	c := mustLoad(t, filepath.Join(dir, "osprey.yaml"))
	s := c.Server
	if s.DataDir != "/srv/osprey" || s.Retention != 30*24*time.Hour || s.Store.SQLite != "/srv/osprey/osprey.db" ||
		s.Admin.Listen != "127.0.0.1:8080" || s.NATS.Sync != SyncAlways || !s.NATS.Embedded() || s.NATS.StreamReplicas != 1 ||
		s.Log.Level != "info" || s.Log.Format != "json" || s.Admin.TLS.Enabled() {
		t.Errorf("server = %+v", s)
	}
	if len(c.Channels) != 1 {
		t.Fatalf("channels = %d", len(c.Channels))
	}
	ch := c.Channels[0]
	if ch.Name != "adt-in" || !ch.Enabled || ch.Source.Name != "mllp" || ch.Source.Conf.String("address") != "127.0.0.1:2575" ||
		ch.Filter != `msg.Type == "ADT"` || ch.Match == nil || ch.OrderedBy == "" || ch.OrderKey == nil || ch.Ordered ||
		ch.DedupeWindow != 10*time.Minute || ch.Retention != 30*24*time.Hour {
		t.Errorf("channel = %+v", ch)
	}
	if want := filepath.Join(dir, "osprey.yaml") + ":8:13"; ch.FilterPos != want {
		t.Errorf("FilterPos = %s, want %s", ch.FilterPos, want)
	}
	if len(ch.Transform) != 1 || ch.Transform[0].Name != "set" || ch.Transform[0].Impl == nil {
		t.Errorf("transform = %+v", ch.Transform)
	}
	if len(ch.Destinations) != 2 {
		t.Fatalf("destinations = %+v", ch.Destinations)
	}
	ris, arc := ch.Destinations[0], ch.Destinations[1]
	if ris.Name != "ris" || ris.Component.Name != "mllp" || ris.Conf.String("name") != "ris" || ris.Component.Conf.String("address") != "ris:2575" ||
		ris.OnReject != OnRejectDeadLetter || ris.Match == nil ||
		ris.Retry != (Retry{MaxAttempts: 3, InitialBackoff: 2 * time.Second, MaxBackoff: 5 * time.Minute, Multiplier: 2}) {
		t.Errorf("ris = %+v", ris)
	}
	if arc.Component.Name != "file" || arc.OnReject != OnRejectRetry || arc.Match != nil || arc.Retry.MaxAttempts != 10 {
		t.Errorf("archive = %+v", arc)
	}
	if c.Channel("adt-in") == nil || c.Channel("nope") != nil {
		t.Error("Channel lookup")
	}
}

func TestLoadDefaultsWithoutServer(t *testing.T) {
	dir := write(t, map[string]string{"c.yaml": goodChannel})
	c := mustLoad(t, filepath.Join(dir, "c.yaml"))
	if c.Server.DataDir != "./data" || c.Server.Pos != "" || c.Server.Retention != 720*time.Hour ||
		c.Server.Store.SQLite != filepath.Join("data", "osprey.db") {
		t.Errorf("server = %+v", c.Server)
	}
	if c.Channels[0].Retention != 720*time.Hour {
		t.Errorf("retention = %v, want the server's", c.Channels[0].Retention)
	}
}

func TestLoadFolder(t *testing.T) {
	dir := write(t, map[string]string{
		"10-server.yaml": "server:\n  retention: 48h\n",
		"20-adt.yml":     goodChannel,
		"30-orders.yaml": "channels:\n  - name: orders\n    retention: 1h\n    source: {http: {path: /orders}}\n    destinations: [{name: ris, mllp: {address: x}}]\n" +
			"---\nchannels:\n  - name: second-doc\n    source: {http: {path: /x}}\n    destinations: [{name: d, file: {dir: /d}}]\n",
		"notes.txt":           "not a config",
		".hidden.yaml":        "broken: [",
		"sub/ignored.yaml":    "broken: [",
		"real/40-linked.yaml": "channels:\n  - name: linked\n    source: {http: {path: /l}}\n    destinations: [{name: d, file: {dir: /d}}]\n",
	})
	// A ConfigMap volume mounts every file as a symlink.
	if err := os.Symlink(filepath.Join(dir, "real", "40-linked.yaml"), filepath.Join(dir, "40-linked.yaml")); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, dir)
	wantFiles := []string{filepath.Join(dir, "10-server.yaml"), filepath.Join(dir, "20-adt.yml"), filepath.Join(dir, "30-orders.yaml"),
		filepath.Join(dir, "40-linked.yaml")}
	if !slices.Equal(c.Files, wantFiles) {
		t.Errorf("Files = %v, want %v", c.Files, wantFiles)
	}
	var got []string
	for _, ch := range c.Channels {
		got = append(got, ch.Name+"@"+filepath.Base(ch.File)+"/"+ch.Retention.String())
	}
	want := []string{"adt-in@20-adt.yml/48h0m0s", "orders@30-orders.yaml/1h0m0s", "second-doc@30-orders.yaml/48h0m0s",
		"linked@40-linked.yaml/48h0m0s"}
	if !slices.Equal(got, want) {
		t.Errorf("channels = %v, want %v", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		path  string // relative to the folder; "" loads the folder
		want  []string
	}{
		{
			name:  "duplicate channel across files points at both",
			files: map[string]string{"a.yaml": goodChannel, "b.yaml": goodChannel},
			want: []string{
				`a.yaml:2:11: channel "adt-in" is defined again at b.yaml:2:11`,
				`b.yaml:2:11: channel "adt-in" is defined twice (first at a.yaml:2:11)`,
			},
		},
		{
			name:  "server in two files",
			files: map[string]string{"a.yaml": "server: {data_dir: /a}\n" + goodChannel, "b.yaml": "server:\n  data_dir: /b\n"},
			want:  []string{`b.yaml:1:1: server is configured twice (first at a.yaml:1:1); keep it in one file`},
		},
		{
			name:  "bad source name lists the known ones",
			files: map[string]string{"a.yaml": "channels:\n  - name: a\n    source:\n      mlp: {}\n    destinations: [{name: d, file: {dir: x}}]\n"},
			want:  []string{`a.yaml:4:7: unknown source "mlp"; did you mean "mllp"? (known: http, mllp)`},
		},
		{
			name: "destination without a connector key",
			files: map[string]string{"a.yaml": "channels:\n  - name: a\n    source: {mllp: {}}\n    destinations:\n" +
				"      - name: d\n        retry: {max_attempts: 1}\n"},
			want: []string{`a.yaml:5:9: channels[0].destinations[0]: missing a destination: give exactly one of file, mllp`},
		},
		{
			name: "destination with two connector keys",
			files: map[string]string{"a.yaml": "channels:\n  - name: a\n    source: {mllp: {}}\n    destinations:\n" +
				"      - name: d\n        mllp: {address: x}\n        file: {dir: y}\n"},
			want: []string{`a.yaml:7:9: channels[0].destinations[0]: more than one destination: "mllp" and "file"; give exactly one`},
		},
		{
			name: "ordered and ordered_by",
			files: map[string]string{"a.yaml": "channels:\n  - name: a\n    source: {mllp: {}}\n    destinations: [{name: d, file: {dir: x}}]\n" +
				"    ordered: true\n    ordered_by: msg.Get(\"PID-3.1\")\n"},
			want: []string{`a.yaml:6:17: ordered_by and ordered: true are mutually exclusive: ordered keeps one order for the whole channel, ordered_by one order per key; remove one`},
		},
		{
			name:  "no destinations is a warning",
			files: map[string]string{"a.yaml": "channels:\n  - name: a\n    source: {mllp: {}}\n    destinations: []\n"},
			want:  []string{`warning: a.yaml:2:11: channel "a" has no destinations: its messages are stored and go no further`},
		},
		{
			name: "destination names, channel name, backoff",
			files: map[string]string{"a.yaml": "channels:\n  - name: ADT in\n    source: {mllp: {}}\n    destinations:\n" +
				"      - {name: d, file: {dir: x}}\n      - {name: d, file: {dir: y}, retry: {initial_backoff: 10m}}\n"},
			want: []string{
				`a.yaml:2:11: field "channels[0].name": "ADT in" is not a valid name: use lowercase letters, digits, '-' and '_', starting with a letter or digit`,
				`a.yaml:6:16: destination "d" is defined twice in channel "ADT in" (first at a.yaml:5:16)`,
				`a.yaml:6:60: initial_backoff 10m0s is longer than max_backoff 5m0s`,
			},
		},
		{
			name: "transform step built and refused",
			files: map[string]string{"a.yaml": "channels:\n  - name: a\n    source: {mllp: {}}\n    destinations: [{name: d, file: {dir: x}}]\n" +
				"    transform:\n      - set: {path: PV1-3.1, value: ED, expr: '\"x\"'}\n      - sett: {path: PV1-3.1}\n"},
			want: []string{
				`a.yaml:6:14: transform set: PV1-3.1: give either value or expr, not both`,
				`a.yaml:7:9: unknown transform step "sett"; did you mean "set"? (known: ` + stepNames() + `)`,
			},
		},
		{
			name: "server checks",
			files: map[string]string{"a.yaml": "server:\n  admin:\n    tls: {cert_file: c.pem}\n" +
				"    tokens:\n      - {name: ops, token: \"${TEST_TOKEN_A}\", role: admin}\n      - {name: ops, token: \"${TEST_TOKEN_A}\", role: superuser}\n" +
				"  nats: {sync: fast, stream_replicas: 3}\n" + goodChannel},
			want: []string{
				`a.yaml:3:10: tls: set both cert_file and key_file, or neither`,
				`a.yaml:6:16: token name "ops" is used twice (first at a.yaml:5:16)`,
				`a.yaml:6:28: token "ops" has the same value as another token; give each holder its own`,
				`a.yaml:6:53: field "server.admin.tokens[1].role": "superuser" is not one of admin, read`,
				`warning: a.yaml:7:16: nats.sync is fast: a crash or power failure can lose messages already acknowledged to senders`,
				`a.yaml:7:39: the embedded NATS server is a single node: stream_replicas must be 1 without nats.url`,
			},
		},
		{
			name:  "secret values never appear",
			files: map[string]string{"a.yaml": "server:\n  admin:\n    tokens: [{name: ops, token: \"${TEST_TOKEN_SHORT}\"}]\n" + strings.Replace(goodChannel, `mllp: {address: "127.0.0.1:2575"}`, `mllp: {password: "${TEST_TOKEN_A}"}`, 1)},
			want: []string{
				`a.yaml:3:33: field "server.admin.tokens[0].token": token is shorter than 16 characters; use a long random value`,
				`a.yaml:7:24: field "channels[0].source.mllp.password": the value is not one of never-shown`,
			},
		},
		{
			name:  "secret in clear warns",
			files: map[string]string{"a.yaml": "server:\n  admin:\n    tokens: [{name: ops, token: 0123456789abcdef0123}]\n" + goodChannel},
			want:  []string{`warning: a.yaml:3:33: field "server.admin.tokens[0].token" is a secret written in clear; use ${ENV_VAR} or ${file:/path}`},
		},
		{
			name:  "unknown top-level key and YAML error in another file",
			files: map[string]string{"a.yaml": "chanels: []\n", "b.yaml": "server: b\n  c: d\n"},
			want: []string{
				`a.yaml:1:1: unknown field "chanels"; did you mean "channels"?`,
				`b.yaml:2:1: yaml: mapping values are not allowed in this context`,
			},
		},
		{
			name:  "empty folder",
			files: map[string]string{"readme.txt": "x"},
			want:  []string{`DIR: no *.yaml or *.yml files in the folder`},
		},
		{
			name:  "missing file",
			files: map[string]string{},
			path:  "nope.yaml",
			want:  []string{`nope.yaml: cannot read configuration: stat nope.yaml: no such file or directory`},
		},
		{
			name:  "no channels is a warning",
			files: map[string]string{"a.yaml": "server: {}\n"},
			want:  []string{`warning: a.yaml:1:1: no channels are configured`},
		},
	}
	t.Setenv("TEST_TOKEN_A", "0123456789abcdef-secret")
	t.Setenv("TEST_TOKEN_SHORT", "tiny-secret")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := write(t, tt.files)
			path := dir
			if tt.path != "" {
				path = filepath.Join(dir, tt.path)
			}
			c, lints := Load(path, reg)
			got := lintLines(dir, lints)
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], dir, "DIR")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("lints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if (c == nil) != spec.HasErrors(lints) {
				t.Errorf("config is nil=%v with errors=%v: want nil exactly when there are errors", c == nil, spec.HasErrors(lints))
			}
			for _, l := range got {
				if strings.Contains(l, "secret") && (strings.Contains(l, "0123456789abcdef-secret") || strings.Contains(l, "tiny-secret")) {
					t.Errorf("a lint shows a secret value: %s", l)
				}
			}
		})
	}
}

func stepNames() string {
	var names []string
	for _, c := range rules.Steps() {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

func TestSubstitution(t *testing.T) {
	dir := write(t, map[string]string{
		"secrets/ris-addr": "ris.example:2575\n",
		"abs":              "from-absolute\r\n",
	})
	t.Setenv("TEST_SET", "set-value")
	t.Setenv("TEST_EMPTY", "")
	t.Setenv("TEST_PORTS", "7")
	tests := []struct {
		name  string
		value string // YAML scalar for the file destination's dir
		want  string
	}{
		{"env", "${TEST_SET}", "set-value"},
		{"env inside text", "/data/${TEST_SET}/out", "/data/set-value/out"},
		{"two refs", "${TEST_SET}-${TEST_SET}", "set-value-set-value"},
		{"default when unset", "${TEST_UNSET_X:-fallback}", "fallback"},
		{"default when empty", "${TEST_EMPTY:-fallback}", "fallback"},
		{"default ignored when set", "${TEST_SET:-fallback}", "set-value"},
		{"empty default", "x${TEST_UNSET_X:-}y", "xy"},
		{"empty variable without default", "x${TEST_EMPTY}y", "xy"},
		{"relative file", "${file:secrets/ris-addr}", "ris.example:2575"},
		{"absolute file", "${file:" + filepath.Join(dir, "abs") + "}", "from-absolute"},
		{"escape", "$${TEST_SET}", "${TEST_SET}"},
		{"escape and ref", "$${A} ${TEST_SET}", "${A} set-value"},
		{"dollar alone", "cost $5", "cost $5"},
		{"quoted", `"${TEST_SET}"`, "set-value"},
		{"block", "|\n            ${TEST_SET}", "set-value\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "channels:\n  - name: a\n    source: {mllp: {max_connections: \"${TEST_PORTS}\"}}\n    destinations:\n" +
				"      - name: d\n        file:\n          dir: " + tt.value + "\n"
			if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			c := mustLoad(t, filepath.Join(dir, "c.yaml"))
			if got := c.Channels[0].Destinations[0].Component.Conf.String("dir"); got != tt.want {
				t.Errorf("dir = %q, want %q", got, tt.want)
			}
			if got := c.Channels[0].Source.Conf.Int("max_connections"); got != 7 {
				t.Errorf("an int from ${} = %d, want 7", got)
			}
		})
	}
}

func TestSubstitutionErrors(t *testing.T) {
	tests := []struct {
		name, value string
		want        string
	}{
		{"unset", "${TEST_UNSET_Y}", `c.yaml:7:16: environment variable TEST_UNSET_Y is not set; set it, or give a default with ${TEST_UNSET_Y:-value}`},
		{"bad name", "${1X}", `c.yaml:7:16: invalid reference ${1X}: use ${VAR}, ${VAR:-default} or ${file:/path}, and $${ for a literal ${`},
		{"bash form", "${X:default}", `c.yaml:7:16: invalid reference ${X:default}: use ${VAR}, ${VAR:-default} or ${file:/path}, and $${ for a literal ${`},
		{"unterminated", "${TEST_SET", `c.yaml:7:16: unterminated ${ in value; write $${ for a literal ${`},
		{"missing file", "${file:nope.txt}", `c.yaml:7:16: ${file:nope.txt}: open nope.txt: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "channels:\n  - name: a\n    source: {mllp: {}}\n    destinations:\n" +
				"      - name: d\n        file:\n          dir: " + tt.value + "\n"
			dir := write(t, map[string]string{"c.yaml": src})
			_, lints := Load(filepath.Join(dir, "c.yaml"), reg)
			got := lintLines(dir, lints)
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], dir, "DIR")
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("lints = %q, want %q", got, tt.want)
			}
		})
	}
}

// An expression error is reported on the character it is about, however the scalar is
// written: the test checks that the text at the reported position is the typo.
func TestExprErrorPositions(t *testing.T) {
	tests := []struct {
		name   string
		filter string // the lines after "    filter:", at the channel's indentation
	}{
		{"plain", ` msg.Typo == "ADT"`},
		{"single quoted", ` 'msg.Typo == "ADT"'`},
		{"double quoted", ` "msg.Typo == \"ADT\""`},
		{"literal block", " |\n      msg.Type == \"ADT\" &&\n        msg.Typo == \"x\""},
		{"literal block keep", " |+\n\n      msg.Typo == \"x\"\n"},
		{"folded block", " >-\n      msg.Typo == \"ADT\""},
		{"in a transform step", " msg.Type == \"ADT\"\n    transform:\n      - set:\n          path: MSH-5\n          value: X\n          if: |\n            msg.Typo == \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "channels:\n  - name: a\n    source: {mllp: {}}\n    destinations: [{name: d, file: {dir: x}}]\n" +
				"    filter:" + tt.filter + "\n"
			dir := write(t, map[string]string{"c.yaml": src})
			_, lints := Load(filepath.Join(dir, "c.yaml"), reg)
			if len(lints) != 1 || lints[0].Type != spec.LintExpr {
				t.Fatalf("lints = %v, want one expr lint", lints)
			}
			l := lints[0]
			lines := strings.Split(src, "\n")
			if l.Line < 1 || l.Line > len(lines) || l.Col < 1 || l.Col > len(lines[l.Line-1]) {
				t.Fatalf("lint %s is outside the file", l)
			}
			if at := lines[l.Line-1][l.Col-1:]; !strings.HasPrefix(at, "Typo") && !strings.HasPrefix(at, "msg.Typo") {
				t.Errorf("lint %s points at %q, want the typo", l, at)
			}
			if !strings.Contains(l.Msg, "Typo") {
				t.Errorf("message %q does not name the unknown field", l.Msg)
			}
		})
	}
}

func TestHashAndDiff(t *testing.T) {
	base := write(t, map[string]string{"c.yaml": "server: {retention: 24h}\n" + goodChannel +
		"  - name: other\n    source: {http: {path: /x}}\n    destinations: [{name: d, file: {dir: /d}}]\n"})
	a := mustLoad(t, filepath.Join(base, "c.yaml"))

	// The same configuration written differently: comments, flow style, key order, defaults spelled out.
	same := write(t, map[string]string{"c.yaml": `# reformatted
server:
  retention: 1d
channels:
  - source: {mllp: {address: "127.0.0.1:2575", max_connections: 0}}
    name: adt-in
    enabled: true
    filter: 'msg.Type == "ADT"'
    transform: [{set: {value: ED, path: PV1-3.1}}]
    destinations:
      - {name: ris, mllp: {address: "ris:2575"}, retry: {initial_backoff: 2s, max_attempts: 3}, on_reject: dead_letter, filter: msg.Event != "A08"}
      - name: archive
        file:
          dir: /var/archive
    ordered_by: msg.Get("PID-3.1")
    dedupe: {window: 600s}
  - name: other
    source: {http: {path: /x}}
    destinations: [{name: d, file: {dir: /d}}]
`})
	b := mustLoad(t, filepath.Join(same, "c.yaml"))
	if a.Channels[0].Hash() != b.Channels[0].Hash() || a.Hash() != b.Hash() {
		t.Errorf("reformatting changed the hash")
	}

	changed := write(t, map[string]string{
		"c.yaml": "server: {retention: 24h}\n" + strings.Replace(goodChannel, "ris:2575", "ris:2576", 1) +
			"  - name: added\n    source: {http: {path: /y}}\n    destinations: [{name: d, file: {dir: /d}}]\n",
	})
	c := mustLoad(t, filepath.Join(changed, "c.yaml"))
	d := Diff(a, c)
	if !slices.Equal(d.Changed, []string{"adt-in"}) || !slices.Equal(d.Added, []string{"added"}) ||
		!slices.Equal(d.Removed, []string{"other"}) || len(d.Unchanged) != 0 || d.Server {
		t.Errorf("Diff = %+v", d)
	}
	if d := Diff(a, b); len(d.Changed)+len(d.Added)+len(d.Removed) != 0 || len(d.Unchanged) != 2 || d.Server {
		t.Errorf("Diff of equal configs = %+v", d)
	}

	// A new server retention changes the server and every channel that inherits it.
	longer := write(t, map[string]string{"c.yaml": "server: {retention: 48h}\n" + goodChannel})
	e := mustLoad(t, filepath.Join(longer, "c.yaml"))
	if d := Diff(a, e); !d.Server || !slices.Equal(d.Changed, []string{"adt-in"}) {
		t.Errorf("Diff after retention change = %+v", d)
	}
}

func TestRetryBackoff(t *testing.T) {
	r := Retry{InitialBackoff: time.Second, MaxBackoff: 10 * time.Second, Multiplier: 2}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := r.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

func TestSecretsStayOutOfStrings(t *testing.T) {
	tok := Token{Name: "ops", Token: "super-secret-token", Role: RoleAdmin}
	st := Store{Postgres: "postgres://u:pw@db/x"}
	for _, s := range []string{tok.String(), st.String()} {
		if strings.Contains(s, "secret-token") || strings.Contains(s, "pw@") {
			t.Errorf("String() shows a secret: %s", s)
		}
	}
}

// The server block of the reference, copied as it is, loads without a lint.
func TestServerSkeletonLoads(t *testing.T) {
	y := spec.Skeleton([]spec.Field{spec.NewObject("server", "", ServerSpec()...)})
	c, lints := LoadFiles([]File{{Name: "s.yaml", Data: []byte(y + goodChannel)}}, reg)
	if c == nil || len(lints) > 0 {
		t.Errorf("lints: %v\n%s", lints, y)
	}
}

func TestDocsSectionsAndSchema(t *testing.T) {
	secs := Sections(reg)
	if len(secs) != 3 || secs[0].ID() != "config.file" || secs[1].ID() != "config.server" || secs[2].ID() != "config.channel" {
		t.Fatalf("sections = %v", secs)
	}
	var b strings.Builder
	if err := spec.RenderMarkdown(&b, secs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"`server.nats.sync`", "`channels[].destinations[].retry.max_attempts`", "[`mllp`](#source.mllp)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("docs lack %s", want)
		}
	}
	// The schema of the file describes every registered component.
	schema := spec.JSONSchema("osprey", FileSpec(reg))
	defs, _ := schema["$defs"].(map[string]any)
	for _, id := range []string{"source.mllp", "source.http", "destination.mllp", "destination.file", "transform.set"} {
		if defs[id] == nil {
			t.Errorf("schema has no $defs[%q]", id)
		}
	}
}
