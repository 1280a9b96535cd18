package hl7v2

import "fmt"

// Split cuts a file or stream into messages. It understands HL7 batch files (FHS and BHS
// headers, BTS and FTS trailers, which it drops), several messages in a row without batch
// segments, blank lines and MLLP framing bytes between messages, a byte order mark, and
// CR, LF or CRLF terminators. Each message returned starts at its MSH and ends after the
// terminator of its last segment; the slices share data's memory but cannot grow into
// each other. Split checks the batch structure only, not the messages: a nested FHS or
// BHS, a trailer without its header, FTS inside an open batch and a segment before any MSH
// are *ParseError errors (Segment counts the non-blank lines of data). A missing BTS or
// FTS at the very end is accepted, as truncated files are common and lose no message.
func Split(data []byte) ([][]byte, error) {
	var out [][]byte
	pos := 0
	if len(data) >= 3 && data[0] == bom[0] && data[1] == bom[1] && data[2] == bom[2] {
		pos = 3
	}
	sc := lineScanner{b: data, pos: pos, cr: -1, lf: -1}
	msgStart, msgEnd := -1, -1
	var inFile, inBatch bool
	batchAt, fileAt, n := 0, 0, 0
	flush := func() {
		if msgStart >= 0 {
			out = append(out, data[msgStart:msgEnd:msgEnd])
			msgStart = -1
		}
	}
	fail := func(off int, name []byte, format string, args ...any) error {
		return &ParseError{Segment: n, SegmentName: string(name), Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	for {
		s, e, t, ok := sc.next()
		if !ok {
			break
		}
		for s < e && data[s] == 0x0b { // MLLP start-of-block
			s++
		}
		end := e + len(terms[t])
		if s < e && data[e-1] == 0x1c { // MLLP end-of-block on the segment's line
			e--
			end = e
		}
		line := data[s:e]
		if isBlank(line) {
			continue
		}
		n++
		name := line
		if len(line) > 3 && !isAlnum(line[3]) {
			name = line[:3]
		}
		switch string(name) {
		case "FHS":
			if inFile {
				return nil, fail(s, name, "nested FHS: the file header at segment %d has no FTS", fileAt)
			}
			if inBatch {
				return nil, fail(s, name, "FHS inside the batch opened at segment %d", batchAt)
			}
			flush()
			inFile, fileAt = true, n
		case "FTS":
			if !inFile {
				return nil, fail(s, name, "FTS without FHS")
			}
			if inBatch {
				return nil, fail(s, name, "FTS before BTS closes the batch opened at segment %d", batchAt)
			}
			flush()
			inFile = false
		case "BHS":
			if inBatch {
				return nil, fail(s, name, "nested BHS: the batch opened at segment %d has no BTS", batchAt)
			}
			flush()
			inBatch, batchAt = true, n
		case "BTS":
			if !inBatch {
				return nil, fail(s, name, "BTS without BHS")
			}
			flush()
			inBatch = false
		case "MSH":
			flush()
			msgStart, msgEnd = s, end
		default:
			if msgStart < 0 {
				if name := lineName(line); name != "" {
					return nil, fail(s, []byte(name), "segment outside a message: no MSH before it")
				}
				return nil, fail(s, nil, "%q outside a message: no MSH before it", truncate(line, 12))
			}
			msgEnd = end
		}
	}
	flush()
	return out, nil
}
