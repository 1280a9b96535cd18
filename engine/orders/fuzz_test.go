package orders

import (
	"testing"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// FuzzAll checks that no message, however malformed, makes All panic, and that every order
// it returns has an accession and the message's patient.
func FuzzAll(f *testing.F) {
	f.Add([]byte(mshORM231 + "\r" + pid + "\rORC|NW|PL|FL\rOBR|1|PL|FL|X^Y|||||||||||||ACC\r"))
	f.Add([]byte(mshOMI251 + "\rORC|CA\rTQ1|1||||||||S\rOBR|1\rIPC|A1\rIPC|A1\rORC|DC|||||^^^^^R\rOBR|2||F2\r"))
	f.Add([]byte("MSH|^~\\&|||||||ORM^O01|1|P|2.3\rOBR|1||F\rORC\r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := hl7v2.Parse(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, o := range All(m) {
			if o.Accession == "" || seen[o.Accession] {
				t.Fatalf("order %+v: empty or repeated accession", o)
			}
			seen[o.Accession] = true
		}
	})
}
