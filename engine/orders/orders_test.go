package orders

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/store"
)

// seg builds a segment from its fields by number, so each test says which field it sets.
func seg(name string, fields map[int]string) string {
	n := 0
	for k := range fields {
		n = max(n, k)
	}
	parts := make([]string, n+1)
	parts[0] = name
	for k, v := range fields {
		parts[k] = v
	}
	return strings.Join(parts, "|")
}

func message(t *testing.T, segments ...string) *hl7v2.Message {
	t.Helper()
	m, err := hl7v2.Parse([]byte(strings.Join(segments, "\r") + "\r"))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m
}

func local(s string) time.Time {
	t, err := time.ParseInLocation("20060102150405", s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

const (
	mshORM231 = `MSH|^~\&|RIS|HOSP|OSPREY|RAD|20261201101500||ORM^O01|ORM1|P|2.3.1`
	mshOMI251 = `MSH|^~\&|RIS|HOSP|OSPREY|RAD|20261201111500+0100||OMI^O23^OMI_O23|OMI1|P|2.5.1`
	pid       = `PID|1||MRN123^^^HOSP^MR~999^^^SSA^SS||DOE^JANE^Q^^^||19700515|F`
	pv1ED     = `PV1|1|E|EDX^12^1^HOSP||||||||||||||||V1`
)

func TestFromHL7(t *testing.T) {
	tests := []struct {
		name string
		segs []string
		want store.Order
		ok   bool
	}{
		{
			name: "ORM^O01 v2.3.1, priority in OBR-27, accession in OBR-18",
			segs: []string{mshORM231, pid, pv1ED,
				seg("ORC", map[int]string{1: "NW", 2: "PL123^RIS", 3: "FL456^RIS", 5: "SC", 9: "20261201100500", 12: "1234^SMITH^JOHN^^^DR"}),
				seg("OBR", map[int]string{1: "1", 2: "PL123", 3: "FL456", 4: "CTHEAD^CT HEAD WO CONTRAST^L", 13: "fell, headache",
					16: "9999^OTHER^DOC", 18: "ACC001", 24: "CT", 27: "^^^20261201103000^^S", 31: "R51^Headache^I10"}),
			},
			ok: true,
			want: store.Order{Accession: "ACC001", PlacerOrderNumber: "PL123", FillerOrderNumber: "FL456",
				PatientID: "MRN123", PatientName: "DOE^JANE^Q", PatientSex: "F", PatientBirthDate: "19700515",
				PatientIDAuthority: "HOSP", PatientClass: "E",
				Priority: "S", OrderingProvider: "1234^SMITH^JOHN^^^DR", Location: "EDX", ProcedureCode: "CTHEAD",
				ProcedureText: "CT HEAD WO CONTRAST", Reason: "Headache", Status: "SC",
				OrderedAt: local("20261201100500"), UpdatedAt: local("20261201101500")},
		},
		{
			name: "OMI^O23 v2.5.1, priority in TQ1-9, accession in IPC-1 over OBR-18",
			segs: []string{mshOMI251, pid, `PV1|1|I|W4^402^B`,
				seg("ORC", map[int]string{1: "NW", 2: "PL9", 3: "FL9", 5: "IP", 7: "^^^^^R"}),
				seg("TQ1", map[int]string{1: "1", 9: "A^ASAP^HL70485"}),
				seg("OBR", map[int]string{1: "1", 2: "PL9", 3: "FL9", 4: "MRBRAIN^MR BRAIN W AND WO^L", 5: "R", 18: "PLACERFIELD",
					16: "77^JONES^ANN", 13: "follow-up"}),
				seg("IPC", map[int]string{1: "ACC777^RIS", 2: "RP1", 3: "1.2.826.0.1.3680043.2.1", 4: "SPS1", 5: "MR"}),
				seg("IPC", map[int]string{1: "ACC777^RIS", 2: "RP1", 3: "1.2.826.0.1.3680043.2.1", 4: "SPS2", 5: "MR"}),
			},
			ok: true,
			want: store.Order{Accession: "ACC777", PlacerOrderNumber: "PL9", FillerOrderNumber: "FL9",
				PatientID: "MRN123", PatientName: "DOE^JANE^Q", PatientSex: "F", PatientBirthDate: "19700515",
				PatientIDAuthority: "HOSP", PatientClass: "I",
				Priority: "A", OrderingProvider: "77^JONES^ANN", Location: "W4", ProcedureCode: "MRBRAIN",
				ProcedureText: "MR BRAIN W AND WO", Reason: "follow-up", Status: "IP",
				OrderedAt: time.Date(2026, 12, 1, 11, 15, 0, 0, time.FixedZone("+0100", 3600)),
				UpdatedAt: time.Date(2026, 12, 1, 11, 15, 0, 0, time.FixedZone("+0100", 3600))},
		},
		{
			name: "cancel: ORC-1 CA wins over a stale ORC-5",
			segs: []string{mshORM231, pid,
				seg("ORC", map[int]string{1: "CA", 2: "PL123", 3: "FL456", 5: "SC", 16: "^Patient refused"}),
				seg("OBR", map[int]string{1: "1", 2: "PL123", 3: "FL456", 4: "CTHEAD^CT HEAD", 18: "ACC001"}),
			},
			ok: true,
			want: store.Order{Accession: "ACC001", PlacerOrderNumber: "PL123", FillerOrderNumber: "FL456",
				PatientID: "MRN123", PatientName: "DOE^JANE^Q", PatientSex: "F", PatientBirthDate: "19700515",
				PatientIDAuthority: "HOSP", ProcedureCode: "CTHEAD", ProcedureText: "CT HEAD", Status: "CA",
				OrderedAt: local("20261201101500"), UpdatedAt: local("20261201101500")},
		},
		{
			name: "discontinue, priority in ORC-7.6 over OBR-27 and OBR-5, accession from OBR-3",
			segs: []string{mshORM231,
				seg("ORC", map[int]string{1: "DC", 2: "PL5", 7: "^^^^^s"}),
				seg("OBR", map[int]string{1: "1", 2: "PL5", 3: "FL5", 4: "XR1^XR CHEST", 5: "R", 27: "^^^^^R", 44: "IGNORED^IGNORED"}),
			},
			ok: true,
			want: store.Order{Accession: "FL5", PlacerOrderNumber: "PL5", FillerOrderNumber: "FL5", Priority: "S",
				ProcedureCode: "XR1", ProcedureText: "XR CHEST", Status: "DC",
				OrderedAt: local("20261201101500"), UpdatedAt: local("20261201101500")},
		},
		{
			name: "priority in OBR-5 only, procedure in OBR-44, escaped provider",
			segs: []string{mshORM231,
				seg("ORC", map[int]string{1: "NW", 3: "FL6", 12: `12^O\T\BRIEN^PAT`}),
				seg("OBR", map[int]string{1: "1", 3: "FL6", 5: "a", 44: "77012^CT GUIDANCE^C4"}),
			},
			ok: true,
			want: store.Order{Accession: "FL6", FillerOrderNumber: "FL6", Priority: "A", OrderingProvider: "12^O&BRIEN^PAT",
				ProcedureCode: "77012", ProcedureText: "CT GUIDANCE",
				OrderedAt: local("20261201101500"), UpdatedAt: local("20261201101500")},
		},
		{
			name: "assigning authority as an HD with subcomponents, patient class alone in PV1",
			segs: []string{mshORM231, `PID|1||MRN9^^^GENHOSP&1.2.840.114350&ISO^MR||ROE^RICHARD`, `PV1|1|O`,
				seg("ORC", map[int]string{1: "NW", 3: "FL8"}),
				seg("OBR", map[int]string{1: "1", 3: "FL8", 4: "US1^US ABDOMEN"}),
			},
			ok: true,
			want: store.Order{Accession: "FL8", FillerOrderNumber: "FL8", PatientID: "MRN9", PatientName: "ROE^RICHARD",
				PatientIDAuthority: "GENHOSP", PatientClass: "O", ProcedureCode: "US1", ProcedureText: "US ABDOMEN",
				OrderedAt: local("20261201101500"), UpdatedAt: local("20261201101500")},
		},
		{
			name: "no accession anywhere",
			segs: []string{mshORM231, seg("ORC", map[int]string{1: "NW", 2: "PL7"}), seg("OBR", map[int]string{1: "1", 2: "PL7"})},
		},
		{
			name: "not an order message",
			segs: []string{`MSH|^~\&|ADT|HOSP|OSPREY|RAD|20261201101500||ADT^A01|A1|P|2.5.1`, pid,
				seg("OBR", map[int]string{1: "1", 18: "ACC001"})},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromHL7(message(t, tt.segs...))
			if ok != tt.ok {
				t.Fatalf("FromHL7 ok = %v, want %v (%+v)", ok, tt.ok, got)
			}
			if !ok {
				return
			}
			if !got.OrderedAt.Equal(tt.want.OrderedAt) || !got.UpdatedAt.Equal(tt.want.UpdatedAt) {
				t.Errorf("times = %v / %v, want %v / %v", got.OrderedAt, got.UpdatedAt, tt.want.OrderedAt, tt.want.UpdatedAt)
			}
			got.OrderedAt, got.UpdatedAt, tt.want.OrderedAt, tt.want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromHL7:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAllReadsEveryOrderGroup(t *testing.T) {
	m := message(t, mshORM231, pid, pv1ED,
		seg("ORC", map[int]string{1: "NW", 2: "PA"}),
		seg("OBR", map[int]string{1: "1", 2: "PA", 4: "CTHEAD^CT HEAD", 18: "ACC-A", 27: "^^^^^S"}),
		`NTE|1||first order's note`,
		seg("ORC", map[int]string{1: "NW", 2: "PB"}),
		seg("OBR", map[int]string{1: "2", 2: "PB", 4: "CTCHEST^CT CHEST", 18: "ACC-B", 27: "^^^^^R"}),
		seg("ORC", map[int]string{1: "NW", 2: "PC"}),
		seg("OBR", map[int]string{1: "3", 2: "PC", 4: "CTABD^CT ABDOMEN", 18: "ACC-A"}), // same accession again
	)
	os := All(m)
	var got []string
	for _, o := range os {
		got = append(got, o.Accession+"/"+o.PlacerOrderNumber+"/"+o.Priority+"/"+o.Location+"/"+o.PatientID)
	}
	want := []string{"ACC-A/PA/S/EDX/MRN123", "ACC-B/PB/R/EDX/MRN123"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("All = %v, want %v", got, want)
	}
	if !IsOrder(m) || IsOrder(nil) {
		t.Error("IsOrder is wrong")
	}
}
