package broker_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"maps"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/broker"
)

// sameEntries compares entries, treating nil and empty headers and bodies alike.
func sameEntries(a, b []broker.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !bytes.Equal(a[i].Body, b[i].Body) ||
			len(a[i].Headers) != len(b[i].Headers) || !maps.Equal(a[i].Headers, b[i].Headers) {
			return false
		}
	}
	return true
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		entries []broker.Entry
	}{
		{"no entries", nil},
		{"empty entry", []broker.Entry{{}}},
		{"one HL7 message", []broker.Entry{{ID: "01J9Z", Body: []byte("MSH|^~\\&|RIS|H|OSPREY|H|20240101||ORM^O01|1|P|2.5\r")}}},
		{"headers", []broker.Entry{{ID: "a", Headers: map[string]string{"remote_addr": "10.0.0.1:4000", "content_type": "application/hl7-v2", "": "empty key"}}}},
		{"binary body", []broker.Entry{{ID: "bin", Body: []byte{0, 0xff, 0x0b, 0x1c, 0x0d, 0x80}}}},
		{"unicode", []broker.Entry{{ID: "Zoë", Headers: map[string]string{"name": "Müller^Jürgen"}, Body: []byte("ÄÖÜ")}}},
		{"many", manyEntries(300)},
		{"large body", []broker.Entry{{ID: "big", Body: bytes.Repeat([]byte("x"), 1<<20)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := broker.EncodeRecord(tt.entries)
			if n := broker.RecordSize(tt.entries); n != len(data) {
				t.Errorf("RecordSize = %d, encoded %d bytes", n, len(data))
			}
			got, err := broker.DecodeRecord(data)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if !sameEntries(got, tt.entries) {
				t.Errorf("round trip changed the entries:\n got %v\nwant %v", got, tt.entries)
			}
			if again := broker.EncodeRecord(got); !bytes.Equal(again, data) {
				t.Error("re-encoding the decoded entries gives other bytes")
			}
		})
	}
}

func manyEntries(n int) []broker.Entry {
	out := make([]broker.Entry, n)
	for i := range out {
		out[i] = broker.Entry{
			ID:      strings.Repeat("i", i%7),
			Headers: map[string]string{"n": strings.Repeat("v", i%3), "k": "x"},
			Body:    bytes.Repeat([]byte{byte(i)}, i),
		}
	}
	return out
}

// TestRecordLayout pins the documented layout byte for byte, so a change to the format
// cannot slip in without a new version.
func TestRecordLayout(t *testing.T) {
	got := broker.EncodeRecord([]broker.Entry{{ID: "m1", Headers: map[string]string{"b": "2", "a": "1"}, Body: []byte("hi")}})
	want := []byte{'O', 'S', 'R', 1, // magic, version
		1,           // count
		2, 'm', '1', // id
		2,              // headers
		1, 'a', 1, '1', // sorted by key
		1, 'b', 1, '2',
		2, 'h', 'i', // body
	}
	want = binary.BigEndian.AppendUint32(want, crc32.Checksum(want, crc32.MakeTable(crc32.Castagnoli)))
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeRecord =\n%v\nwant\n%v", got, want)
	}
}

// withCRC appends a valid checksum, so that a test reaches the check it means.
func withCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func TestDecodeRecordErrors(t *testing.T) {
	valid := broker.EncodeRecord([]broker.Entry{{ID: "m1", Headers: map[string]string{"a": "1"}, Body: []byte("body")}})
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-6] ^= 0x01 // a body byte
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"nil", nil, "shorter"},
		{"bad magic", append([]byte("XSR"), valid[3:]...), "magic"},
		{"version 2", append([]byte{'O', 'S', 'R', 2}, valid[4:]...), "version 2"},
		{"flipped body byte", flipped, "checksum"},
		{"trailing byte", withCRC(append(bytes.Clone(valid[:len(valid)-4]), 0)), "trailing"},
		{"count too large", withCRC([]byte{'O', 'S', 'R', 1, 100, 0, 0, 0}), "entry count"},
		{"overlong varint", withCRC([]byte{'O', 'S', 'R', 1, 0x81, 0x00, 0, 0, 0}), "shortest form"},
		{"overflowing varint", withCRC([]byte{'O', 'S', 'R', 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), "overflowing"},
		{"id overruns", withCRC([]byte{'O', 'S', 'R', 1, 1, 9, 'a', 0, 0}), "overruns"},
		{"header keys unsorted", withCRC([]byte{'O', 'S', 'R', 1, 1, 0, 2, 1, 'b', 0, 1, 'a', 0, 0}), "increasing"},
		{"header key repeated", withCRC([]byte{'O', 'S', 'R', 1, 1, 0, 2, 1, 'a', 0, 1, 'a', 0, 0}), "increasing"},
		{"header count too large", withCRC([]byte{'O', 'S', 'R', 1, 1, 0, 50, 0}), "header count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := broker.DecodeRecord(tt.data)
			if !errors.Is(err, broker.ErrCorruptRecord) {
				t.Fatalf("DecodeRecord error %v, want ErrCorruptRecord", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(valid) {
			if _, err := broker.DecodeRecord(valid[:n]); !errors.Is(err, broker.ErrCorruptRecord) {
				t.Errorf("record cut to %d of %d bytes: error %v, want ErrCorruptRecord", n, len(valid), err)
			}
		}
	})
}

// TestDecodeRecordAliasing: a decoded body shares the record's memory but cannot grow into
// the bytes after it.
func TestDecodeRecordAliasing(t *testing.T) {
	data := broker.EncodeRecord([]broker.Entry{{ID: "a", Body: []byte("one")}, {ID: "b", Body: []byte("two")}})
	got, err := broker.DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got[0].Body, "XXXX"...)
	if string(got[1].Body) != "two" || got[1].ID != "b" {
		t.Errorf("append to the first body overwrote the second entry: %q", got[1].Body)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(broker.EncodeRecord(nil))
	f.Add(broker.EncodeRecord([]broker.Entry{{ID: "m1", Headers: map[string]string{"a": "1", "b": "2"}, Body: []byte("MSH|^~\\&|")}}))
	f.Add(broker.EncodeRecord(manyEntries(5)))
	f.Add([]byte("OSR\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := broker.DecodeRecord(data)
		if err != nil {
			if !errors.Is(err, broker.ErrCorruptRecord) {
				t.Fatalf("error %v does not wrap ErrCorruptRecord", err)
			}
			return
		}
		// Whatever decodes is canonical: it encodes back to the same bytes.
		if again := broker.EncodeRecord(entries); !bytes.Equal(again, data) {
			t.Fatalf("decoded record re-encodes differently:\n in %x\nout %x", data, again)
		}
	})
}

func FuzzEncodeRecord(f *testing.F) {
	f.Add("m1", "k", "v", []byte("MSH|"), uint8(1))
	f.Add("", "", "", []byte{}, uint8(0))
	f.Add("Zoë", "a\x00b", "\xff", []byte{0, 1, 2}, uint8(7))
	f.Fuzz(func(t *testing.T, id, key, value string, body []byte, n uint8) {
		entries := make([]broker.Entry, int(n%16))
		for i := range entries {
			entries[i] = broker.Entry{ID: id, Body: body[:len(body)*i/len(entries)]}
			if i%2 == 1 {
				entries[i].Headers = map[string]string{key: value, key + "2": value + value}
			}
		}
		data := broker.EncodeRecord(entries)
		if size := broker.RecordSize(entries); size != len(data) {
			t.Fatalf("RecordSize = %d, encoded %d bytes", size, len(data))
		}
		got, err := broker.DecodeRecord(data)
		if err != nil {
			t.Fatalf("DecodeRecord of EncodeRecord output: %v", err)
		}
		if !sameEntries(got, entries) {
			t.Fatalf("round trip changed the entries:\n got %q\nwant %q", got, entries)
		}
	})
}
