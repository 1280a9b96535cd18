package mllp_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/osprey-health/osprey/channels/mllp"
)

const (
	sb = "\x0b"
	eb = "\x1c"
	cr = "\r"
)

// frameResult is what one ReadFrame call returned.
type frameResult struct {
	frame   string
	skipped int
	err     error
}

func readAll(r *mllp.Reader) []frameResult {
	var out []frameResult
	for range 100 { // bounded: a reader bug must not hang the test
		f, err := r.ReadFrame()
		if err == io.EOF {
			return out
		}
		out = append(out, frameResult{string(f), r.Skipped(), err})
		if err != nil && !errors.Is(err, mllp.ErrFrameTooLarge) {
			return out
		}
	}
	return out
}

func TestReader(t *testing.T) {
	tests := []struct {
		name  string
		input string
		max   int
		want  []frameResult
	}{
		{
			name:  "one frame",
			input: sb + "MSH|1" + eb + cr,
			want:  []frameResult{{frame: "MSH|1"}},
		},
		{
			name:  "back to back frames",
			input: sb + "A" + eb + cr + sb + "B" + eb + cr + sb + "C" + eb + cr,
			want:  []frameResult{{frame: "A"}, {frame: "B"}, {frame: "C"}},
		},
		{
			name:  "garbage between frames is skipped and counted",
			input: "junk\n" + sb + "A" + eb + cr + "\r\nxx" + sb + "B" + eb + cr + "tail",
			want:  []frameResult{{frame: "A", skipped: 5}, {frame: "B", skipped: 4}},
		},
		{
			name:  "missing trailer CR is tolerated",
			input: sb + "A" + eb + sb + "B" + eb,
			want:  []frameResult{{frame: "A"}, {frame: "B"}},
		},
		{
			name:  "empty frame",
			input: sb + eb + cr + sb + "A" + eb + cr,
			want:  []frameResult{{frame: ""}, {frame: "A"}},
		},
		{
			name:  "new start block abandons a partial frame",
			input: sb + "partial" + sb + "A" + eb + cr,
			want:  []frameResult{{frame: "A", skipped: 8}},
		},
		{
			name:  "frame at the limit is accepted",
			input: sb + "12345" + eb + cr,
			max:   5,
			want:  []frameResult{{frame: "12345"}},
		},
		{
			name:  "oversize frame returns its start and the next frame still reads",
			input: sb + "123456789" + eb + cr + sb + "A" + eb + cr,
			max:   5,
			want:  []frameResult{{frame: "12345", err: mllp.ErrFrameTooLarge}, {frame: "A"}},
		},
		{
			name:  "oversize frame abandoned by a new start block",
			input: sb + "123456789" + sb + "A" + eb + cr,
			max:   5,
			want:  []frameResult{{frame: "12345", err: mllp.ErrFrameTooLarge}, {frame: "A"}},
		},
		{
			name:  "stream ends inside a frame",
			input: sb + "A" + eb + cr + sb + "MSH|trunc",
			want:  []frameResult{{frame: "A"}, {err: io.ErrUnexpectedEOF}},
		},
		{
			name:  "only garbage",
			input: "hello world\r\n",
			want:  nil,
		},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte reads", iotest.OneByteReader},
		{"half reads", iotest.HalfReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				got := readAll(mllp.NewReader(rd.wrap(strings.NewReader(tt.input)), tt.max))
				if len(got) != len(tt.want) {
					t.Fatalf("got %d results %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
				}
				for i, w := range tt.want {
					g := got[i]
					if g.frame != w.frame || !errors.Is(g.err, w.err) || (w.err == nil && g.err != nil) {
						t.Errorf("frame %d: got (%q, %v), want (%q, %v)", i, g.frame, g.err, w.frame, w.err)
					}
					// Skip counts are exact only when the reader saw the whole input at once
					// or byte by byte; both must agree with the table.
					if g.skipped != w.skipped {
						t.Errorf("frame %d: skipped %d, want %d", i, g.skipped, w.skipped)
					}
				}
			})
		}
	}
}

// TestReaderReturnsWithoutTrailer checks that a frame whose <CR> has not arrived is returned
// at once: a sender that omits the <CR> waits for its ACK and would deadlock otherwise.
func TestReaderReturnsWithoutTrailer(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	r := mllp.NewReader(pr, 0)
	go pw.Write([]byte(sb + "A" + eb)) // Write blocks until read; the pipe never gets a <CR>
	f, err := r.ReadFrame()
	if err != nil || string(f) != "A" {
		t.Fatalf("ReadFrame = %q, %v; want \"A\"", f, err)
	}
	go func() { pw.Write([]byte(cr + sb + "B" + eb + cr)); pw.Close() }()
	f, err = r.ReadFrame()
	if err != nil || string(f) != "B" || r.Skipped() != 0 {
		t.Fatalf("ReadFrame = %q, %v (skipped %d); want \"B\" with nothing skipped", f, err, r.Skipped())
	}
}

// TestReaderBoundsMemory feeds a frame far larger than the limit and checks the reader never
// returns more than the limit (the frame is discarded as it streams by).
func TestReaderBoundsMemory(t *testing.T) {
	const limit = 1 << 10
	big := io.MultiReader(strings.NewReader(sb), io.LimitReader(infiniteA{}, 8<<20), strings.NewReader(eb+cr+sb+"next"+eb+cr))
	r := mllp.NewReader(big, limit)
	f, err := r.ReadFrame()
	if !errors.Is(err, mllp.ErrFrameTooLarge) || len(f) != limit {
		t.Fatalf("ReadFrame = %d bytes, %v; want %d bytes and ErrFrameTooLarge", len(f), err, limit)
	}
	f, err = r.ReadFrame()
	if err != nil || string(f) != "next" {
		t.Fatalf("after oversize: ReadFrame = %q, %v; want \"next\"", f, err)
	}
}

type infiniteA struct{}

func (infiniteA) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	return len(p), nil
}

func TestWriteFrame(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		want    string
		wantErr error
	}{
		{"message", "MSH|^~\\&|A\rPID|1", sb + "MSH|^~\\&|A\rPID|1" + eb + cr, nil},
		{"empty", "", sb + eb + cr, nil},
		{"start block in payload", "MSH" + sb, "", mllp.ErrInvalidPayload},
		{"end block in payload", "MSH" + eb, "", mllp.ErrInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &countingWriter{}
			err := mllp.WriteFrame(w, []byte(tt.msg))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteFrame error = %v, want %v", err, tt.wantErr)
			}
			if w.buf.String() != tt.want {
				t.Errorf("wrote %q, want %q", w.buf.String(), tt.want)
			}
			if tt.wantErr == nil && w.writes != 1 {
				t.Errorf("WriteFrame made %d Write calls, want 1", w.writes)
			}
		})
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.buf.Write(p) }

// FuzzReader checks that no input panics or returns more than the limit, and that frames
// written by WriteFrame always read back equal, whatever garbage surrounds them.
func FuzzReader(f *testing.F) {
	f.Add([]byte(sb+"MSH|^~\\&|A"+eb+cr), []byte("MSH|1\rPID|1"), []byte("\r\n"))
	f.Add([]byte(sb+sb+eb+eb+cr+cr), []byte(""), []byte(sb))
	f.Add([]byte("garbage"+sb+"x"), []byte("PID"), []byte(eb))
	f.Fuzz(func(t *testing.T, stream, msg, garbage []byte) {
		const limit = 64
		r := mllp.NewReader(bytes.NewReader(stream), limit)
		for range len(stream) + 1 {
			fr, err := r.ReadFrame()
			if len(fr) > limit {
				t.Fatalf("frame of %d bytes exceeds limit %d", len(fr), limit)
			}
			if err != nil && !errors.Is(err, mllp.ErrFrameTooLarge) {
				break
			}
		}

		// Round trip: garbage (stripped of start blocks, which begin frames by definition),
		// then the frame, then garbage again.
		garbage = bytes.ReplaceAll(garbage, []byte(sb), nil)
		var buf bytes.Buffer
		buf.Write(garbage)
		if err := mllp.WriteFrame(&buf, msg); err != nil {
			if !errors.Is(err, mllp.ErrInvalidPayload) {
				t.Fatalf("WriteFrame: %v", err)
			}
			return
		}
		buf.Write(garbage)
		buf.WriteString(sb + "end" + eb + cr)
		r = mllp.NewReader(iotest.HalfReader(&buf), len(msg)+len("end"))
		got, err := r.ReadFrame()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read back %q, %v; want %q", got, err, msg)
		}
		if got, err := r.ReadFrame(); err != nil || string(got) != "end" {
			t.Fatalf("frame after garbage: %q, %v; want \"end\"", got, err)
		}
	})
}
