package bench

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/postgres"
	"github.com/osprey-health/osprey/engine/store/sqlite"
	"github.com/osprey-health/osprey/engine/store/storetest"
)

// storeBackends opens each message store implementation, empty, for one benchmark.
var storeBackends = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"sqlite", func(b *testing.B) store.Store {
		s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "osprey.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(b *testing.B) store.Store {
		dsn := storetest.PostgresDSN(b) // skips when the server is unreachable
		s, err := postgres.Open(b.Context(), dsn, postgres.Options{Schema: storetest.PostgresSchema(b, dsn)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
}

// storeRaw is an ORM^O01 of about 1 KB.
var storeRaw = func() []byte {
	var buf bytes.Buffer
	buf.WriteString("MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20260314092653||ORM^O01^ORM_O01|CTRL|P|2.5.1\r")
	buf.WriteString("PID|1||123456^^^HOSP^MR||DOE^JOHN^Q||19700101|M|||1 MAIN ST^^SPRINGFIELD^IL^62701\r")
	buf.WriteString("PV1|1|E|ED^1^1||||1234^SMITH^ANNA|||||||||||V123456\r")
	buf.WriteString("ORC|NW|ACC123|ACC123||SC||^^^20260314092600^^STAT\r")
	buf.WriteString("OBR|1|ACC123|ACC123|CTHEAD^CT HEAD WO CONTRAST^L|||20260314092600|||||||||1234^SMITH^ANNA||ACC123\r")
	for buf.Len() < 1000 {
		buf.WriteString("NTE|1||Patient presents with sudden onset headache, rule out intracranial haemorrhage.\r")
	}
	return buf.Bytes()
}()

func storeMessage(id string, at time.Time) store.Message {
	return store.Message{
		ID: id, Channel: "ris-in", ContentType: "application/hl7-v2", Raw: storeRaw, ReceivedAt: at,
		Source: map[string]string{"remote_addr": "10.0.0.7:40112"}, ControlID: "C-" + id,
		MessageType: "ORM^O01", PatientID: "123456", Accession: "ACC123", Sender: "RIS^HOSP",
		Status: store.StatusReceived, UpdatedAt: at,
	}
}

// BenchmarkStorePut measures committed message writes, one transaction per batch.
func BenchmarkStorePut(b *testing.B) {
	for _, be := range storeBackends {
		b.Run(be.name, func(b *testing.B) {
			for _, batch := range []int{1, 64} {
				b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
					s := be.open(b)
					msgs := make([]store.Message, batch)
					now := time.Now()
					n := 0
					b.SetBytes(int64(batch * len(storeRaw)))
					for b.Loop() {
						for j := range msgs {
							msgs[j] = storeMessage(fmt.Sprintf("m%09d", n), now.Add(time.Duration(n)*time.Microsecond))
							n++
						}
						if err := s.PutMessages(b.Context(), msgs); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
				})
			}
		})
	}
}

// BenchmarkStoreSearch measures the analyst's two common searches over 10,000 messages:
// by control id (indexed) and by a piece of text (a scan of the raw bodies).
func BenchmarkStoreSearch(b *testing.B) {
	const rows = 10000
	for _, be := range storeBackends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			start := time.Now().Add(-time.Hour)
			batch := make([]store.Message, 0, 500)
			for i := range rows {
				m := storeMessage(fmt.Sprintf("s%06d", i), start.Add(time.Duration(i)*time.Millisecond))
				if i == rows/3 {
					m.Raw = bytes.Replace(storeRaw, []byte("DOE^JOHN"), []byte("MÜLLER^HANS"), 1)
				}
				batch = append(batch, m)
				if len(batch) == cap(batch) {
					if err := s.PutMessages(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			tests := []struct {
				name string
				q    store.Query
				want int
			}{
				{"control_id", store.Query{ControlID: fmt.Sprintf("C-s%06d", rows/2)}, 1},
				{"text", store.Query{Text: "müller^hans"}, 1},
			}
			for _, tc := range tests {
				b.Run(tc.name, func(b *testing.B) {
					n := 0
					for b.Loop() {
						p, err := s.Search(b.Context(), tc.q)
						if err != nil {
							b.Fatal(err)
						}
						if len(p.Messages) != tc.want {
							b.Fatalf("%d results, want %d", len(p.Messages), tc.want)
						}
						n++
					}
					b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "searches/s")
				})
			}
		})
	}
}
