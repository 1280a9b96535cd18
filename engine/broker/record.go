package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// Entry is one message in a group-commit record.
type Entry struct {
	ID      string            // the caller's id of the message (not interpreted; consumers dedupe by it)
	Headers map[string]string // metadata travelling with the body
	Body    []byte
}

// Record format, version 1. A record is one JetStream message that carries one or more
// entries. All integers are unsigned LEB128 varints (as in protocol buffers), in their
// shortest form:
//
//	magic    4 bytes  'O' 'S' 'R' 0x01 (the last byte is the format version)
//	count    varint   number of entries
//	entries  count times:
//	  id        varint length, then the bytes
//	  nheaders  varint
//	  headers   nheaders times: key (varint length, bytes), value (varint length, bytes),
//	            in strictly increasing byte order of key
//	  body      varint length, then the bytes
//	crc      4 bytes  CRC-32C (Castagnoli) of everything before it, big endian
//
// The format is stable: a new layout gets a new version byte, and DecodeRecord keeps reading
// every version it ever wrote.
const (
	recordMagic   = "OSR"
	RecordVersion = 1 // the version EncodeRecord writes
)

// ErrCorruptRecord is wrapped by every DecodeRecord error.
var ErrCorruptRecord = errors.New("corrupt record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordOverhead is the size of a record around its entries, with a generous varint count;
// singleRecordOverhead is the exact size around a single entry.
const (
	recordOverhead       = len(recordMagic) + 1 + binary.MaxVarintLen64 + crc32.Size
	singleRecordOverhead = len(recordMagic) + 1 + 1 + crc32.Size
)

// EncodeRecord encodes entries as one record. Header keys are written in sorted order, so
// equal entries always encode to equal bytes.
func EncodeRecord(entries []Entry) []byte {
	buf := make([]byte, 0, RecordSize(entries))
	buf = append(buf, recordMagic...)
	buf = append(buf, RecordVersion)
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	var keys []string
	for i := range entries {
		e := &entries[i]
		buf = appendBytes(buf, e.ID)
		keys = keys[:0]
		for k := range e.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = binary.AppendUvarint(buf, uint64(len(keys)))
		for _, k := range keys {
			buf = appendBytes(buf, k)
			buf = appendBytes(buf, e.Headers[k])
		}
		buf = appendBytes(buf, e.Body)
	}
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// RecordSize is len(EncodeRecord(entries)), computed without encoding them: use it with
// Broker.MaxRecord to split entries into records that fit.
func RecordSize(entries []Entry) int {
	n := RecordOverhead(len(entries))
	for i := range entries {
		n += entrySize(&entries[i])
	}
	return n
}

// EntrySize is the encoded size of e inside a record, and RecordOverhead what a record of n
// entries adds to the sum of theirs: a caller filling records one entry at a time keeps a
// running sum instead of sizing the whole record again for every entry.
func EntrySize(e *Entry) int { return entrySize(e) }

// RecordOverhead is the size of a record of n entries beyond the sum of their EntrySize.
func RecordOverhead(n int) int { return len(recordMagic) + 1 + uvarintLen(uint64(n)) + crc32.Size }

// entrySize is the encoded size of e inside a record.
func entrySize(e *Entry) int {
	n := fieldLen(len(e.ID)) + uvarintLen(uint64(len(e.Headers))) + fieldLen(len(e.Body))
	for k, v := range e.Headers {
		n += fieldLen(len(k)) + fieldLen(len(v))
	}
	return n
}

func fieldLen(n int) int { return uvarintLen(uint64(n)) + n }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendBytes[T string | []byte](buf []byte, b T) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// DecodeRecord decodes a record written by EncodeRecord. It is strict: a wrong magic, an
// unknown version, a truncated or overlong field, trailing bytes, unsorted or repeated header
// keys and a checksum mismatch are all errors wrapping ErrCorruptRecord. The bodies of the
// returned entries share data's memory; copy them to keep them past data.
func DecodeRecord(data []byte) ([]Entry, error) {
	if len(data) < len(recordMagic)+1+1+crc32.Size {
		return nil, corrupt("%d bytes is shorter than the smallest record", len(data))
	}
	if string(data[:len(recordMagic)]) != recordMagic {
		return nil, corrupt("bad magic %q", data[:len(recordMagic)])
	}
	if v := data[len(recordMagic)]; v != RecordVersion {
		return nil, corrupt("unsupported version %d", v)
	}
	d := decoder{buf: data[:len(data)-crc32.Size], off: len(recordMagic) + 1}
	count, err := d.uvarint("entry count", -1)
	if err != nil {
		return nil, err
	}
	// Every entry takes at least three bytes; a larger count is corrupt, and checking it
	// first keeps a forged count from allocating a huge slice.
	if count > uint64(d.remaining()/3) {
		return nil, corrupt("entry count %d does not fit in %d bytes", count, d.remaining())
	}
	var entries []Entry
	if count > 0 {
		entries = make([]Entry, count)
	}
	for i := range entries {
		e := &entries[i]
		id, err := d.field("id", i)
		if err != nil {
			return nil, err
		}
		e.ID = string(id)
		nh, err := d.uvarint("header count", i)
		if err != nil {
			return nil, err
		}
		if nh > uint64(d.remaining()/2) {
			return nil, corrupt("entry %d: header count %d does not fit in %d bytes", i, nh, d.remaining())
		}
		if nh > 0 {
			e.Headers = make(map[string]string, nh)
		}
		var prev []byte
		for h := uint64(0); h < nh; h++ {
			k, err := d.field("header key", i)
			if err != nil {
				return nil, err
			}
			if h > 0 && string(k) <= string(prev) {
				return nil, corrupt("entry %d: header keys not in strictly increasing order", i)
			}
			prev = k
			v, err := d.field("header value", i)
			if err != nil {
				return nil, err
			}
			e.Headers[string(k)] = string(v)
		}
		body, err := d.field("body", i)
		if err != nil {
			return nil, err
		}
		if len(body) > 0 {
			e.Body = body
		}
	}
	if d.remaining() != 0 {
		return nil, corrupt("%d trailing bytes after %d entries", d.remaining(), count)
	}
	// The checksum is verified last so that the parser above sees (and is fuzzed with) the
	// same inputs with or without a valid checksum.
	want := binary.BigEndian.Uint32(data[len(data)-crc32.Size:])
	if got := crc32.Checksum(data[:len(data)-crc32.Size], castagnoli); got != want {
		return nil, corrupt("checksum %08x, want %08x", got, want)
	}
	return entries, nil
}

func corrupt(format string, v ...any) error {
	return fmt.Errorf("broker: decode record: %s: %w", fmt.Sprintf(format, v...), ErrCorruptRecord)
}

type decoder struct {
	buf []byte
	off int
}

func (d *decoder) remaining() int { return len(d.buf) - d.off }

// uvarint reads the varint what of entry i (-1: of the record).
func (d *decoder) uvarint(what string, i int) (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.off:])
	switch {
	case n <= 0:
		what += ": truncated or overflowing varint"
	case n != uvarintLen(v):
		what += ": varint not in shortest form"
	default:
		d.off += n
		return v, nil
	}
	if i >= 0 {
		return 0, corrupt("entry %d: %s at offset %d", i, what, d.off)
	}
	return 0, corrupt("%s at offset %d", what, d.off)
}

// field reads a length-prefixed field of entry i. The result aliases d.buf, capped so that an
// append to it cannot overwrite the bytes that follow.
func (d *decoder) field(what string, i int) ([]byte, error) {
	n, err := d.uvarint(what, i)
	if err != nil {
		return nil, err
	}
	if n > uint64(d.remaining()) {
		return nil, corrupt("entry %d: %s of %d bytes overruns the record (%d left)", i, what, n, d.remaining())
	}
	b := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b, nil
}
