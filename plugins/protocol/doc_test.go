package protocol

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const docPath = "../../docs/plugins.md"

// docExample is one JSON block of docs/plugins.md and the marker comment before it.
type docExample struct {
	kind string // "job", "progress" or "result for job"
	line int
	json []byte
}

var markerRE = regexp.MustCompile(`^<!-- example: ([a-z ]+) -->$`)

// docExamples extracts the JSON examples of docs/plugins.md. Every ```json block must be
// preceded by a marker naming what it is, so none escapes validation.
func docExamples(t *testing.T) []docExample {
	t.Helper()
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read the plugin protocol doc: %v", err)
	}
	var (
		out     []docExample
		marker  string
		inBlock bool
		cur     docExample
		buf     bytes.Buffer
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case inBlock && line == "```":
			cur.json = append([]byte(nil), buf.Bytes()...)
			out = append(out, cur)
			inBlock, marker = false, ""
		case inBlock:
			buf.WriteString(line)
			buf.WriteByte('\n')
		case line == "```json":
			if marker == "" {
				t.Errorf("%s:%d: JSON example without an <!-- example: KIND --> marker", docPath, n)
			}
			inBlock, cur = true, docExample{kind: marker, line: n + 1}
			buf.Reset()
		case markerRE.MatchString(line):
			marker = markerRE.FindStringSubmatch(line)[1]
		case strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "```"):
			// A marker applies to the next block only if nothing but blank lines separate them.
			marker = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inBlock {
		t.Fatalf("%s: unterminated code block", docPath)
	}
	return out
}

// TestDocExamples validates every JSON example in docs/plugins.md against the schema, and
// each result example against the job example with CheckResult, so the doc cannot rot.
func TestDocExamples(t *testing.T) {
	examples := docExamples(t)
	counts := map[string]int{}
	var job *Job
	sawICH := false
	for _, ex := range examples {
		counts[ex.kind]++
		t.Run(ex.kind+" at line "+strconv.Itoa(ex.line), func(t *testing.T) {
			switch ex.kind {
			case "job":
				j, err := DecodeJob(ex.json)
				if err != nil {
					t.Fatalf("%s:%d: %v", docPath, ex.line, err)
				}
				job = &j
			case "progress":
				if _, err := DecodeProgress(ex.json); err != nil {
					t.Fatalf("%s:%d: %v", docPath, ex.line, err)
				}
			case "result for job":
				r, err := DecodeResult(ex.json)
				if err != nil {
					t.Fatalf("%s:%d: %v", docPath, ex.line, err)
				}
				if job == nil {
					t.Fatalf("%s:%d: result example before any job example", docPath, ex.line)
				}
				if err := CheckResult(*job, r); err != nil {
					t.Fatalf("%s:%d: %v", docPath, ex.line, err)
				}
				sawICH = sawICH || isICHExample(r)
			default:
				t.Fatalf("%s:%d: unknown example kind %q", docPath, ex.line, ex.kind)
			}
		})
	}
	if counts["job"] < 1 || counts["progress"] < 1 || counts["result for job"] < 4 {
		t.Errorf("doc examples: got %v, want a job, a progress and at least four results", counts)
	}
	if !sawICH {
		t.Error("no result example reports a present SNOMED 1386000 with a volume in mL and a laterality")
	}
}

func isICHExample(r Result) bool {
	for _, f := range r.Findings {
		if f.Code.System != SystemSNOMED || f.Code.Code != "1386000" || !f.Present || f.Location.Laterality == "" {
			continue
		}
		for _, m := range f.Measurements {
			if m.Unit == "mL" {
				return true
			}
		}
	}
	return false
}

// TestDocNames checks the names and numbers the doc states are the ones this package uses.
func TestDocNames(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, want := range []string{
		Version,
		JobsStream("ich"),
		JobsStreamPrefix + "<PLUGIN>",
		JobsSubjectPrefix + "<plugin>",
		Consumer("ich"),
		ConsumerPrefix + "<plugin>",
		ResultsStream,
		ResultsSubjects,
		ResultsSubjectPrefix + "<plugin>",
		ProgressSubjectPrefix + "<job_id>",
		"Nats-Msg-Id: <job_id>:<attempt>",
		"ack wait of " + strconv.Itoa(int(DefaultAckWait.Seconds())) + " seconds",
		nameRE.String(),
		jobIDRE.String(),
		"plugins/protocol/schema/" + SchemaFile,
		MetaModelName, MetaModelVersion, MetaManufacturer, MetaDeviceUID, MetaModalities, MetaBodyParts, MetaProtocol,
		ErrCodeFetch, ErrCodeInput, ErrCodeTimeout, ErrCodeInternal,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s does not mention %q", docPath, want)
		}
	}
	// The credentials section lists PluginPermissions, written with placeholders.
	placeholders := strings.NewReplacer(JobsStream("ich"), JobsStreamPrefix+"<PLUGIN>",
		Consumer("ich"), ConsumerPrefix+"<plugin>", ResultsSubject("ich"), ResultsSubjectPrefix+"<plugin>", InboxPrefix("ich"), "_INBOX_<plugin>")
	perm := PluginPermissions("ich")
	for _, subj := range append(perm.Publish, perm.Subscribe...) {
		if want := "`" + placeholders.Replace(subj) + "`"; !strings.Contains(doc, want) {
			t.Errorf("%s does not list the permission %s", docPath, want)
		}
	}
}
