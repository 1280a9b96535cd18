package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The MLLP envelope (HL7 v2 Minimal Lower Layer Protocol, release 2): a frame is
// <SB> payload <EB><CR>.
const (
	startBlock = 0x0B // <SB>, vertical tab
	endBlock   = 0x1C // <EB>, file separator
	trailerCR  = 0x0D // <CR>
)

// DefaultMaxSize is the frame size limit used when NewReader is given zero or less.
const DefaultMaxSize = 16 << 20

var (
	// ErrFrameTooLarge is returned by ReadFrame for a frame whose payload exceeds the
	// reader's limit. The bytes returned with it are the start of the frame.
	ErrFrameTooLarge = errors.New("mllp: frame too large")
	// ErrInvalidPayload is returned by WriteFrame for a payload that contains a start or end
	// block byte, which no receiver could tell from the envelope.
	ErrInvalidPayload = errors.New("mllp: payload contains an MLLP block character")
)

// Reader reads MLLP frames from a byte stream.
//
// It is lenient in the ways real senders need and strict where leniency would lose data:
//   - Bytes between frames (stray newlines, garbage, the rest of a frame that was too large)
//     are skipped until the next start block; Skipped reports how many.
//   - A start block inside a frame means the sender gave up on the frame and began a new one:
//     the partial frame is dropped (and counted as skipped) and reading restarts there.
//   - A frame ends at the end block. The <CR> after it is consumed when present; senders that
//     omit it are accepted, the frame is returned as soon as the end block arrives (waiting
//     for a <CR> that never comes would deadlock a sender waiting for its ACK).
//   - A frame larger than the limit is never buffered beyond the limit: ReadFrame returns the
//     first maxSize bytes with ErrFrameTooLarge, and the next call discards the remainder.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	skipped int

	// afterEnd: the previous frame ended with <EB> and its <CR> was not yet buffered, so a
	// leading <CR> on the next call belongs to it and is not garbage.
	afterEnd bool
	// discarding: the previous call returned ErrFrameTooLarge and the remainder of that
	// frame, up to its end block, is still to be thrown away.
	discarding bool
}

// NewReader returns a Reader that accepts frames of at most maxSize payload bytes
// (DefaultMaxSize when maxSize <= 0).
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: maxSize}
}

// Skipped is the number of bytes the last ReadFrame call skipped before the frame it
// returned: bytes outside any frame and abandoned partial frames.
func (r *Reader) Skipped() int { return r.skipped }

// buffered is how many bytes were read from the stream and not yet returned.
func (r *Reader) buffered() int { return r.br.Buffered() }

// ReadFrame returns the payload of the next frame, without its envelope, in a newly
// allocated slice the caller may keep. It returns io.EOF when the stream ends between frames
// and io.ErrUnexpectedEOF when it ends inside one. An empty frame (<SB><EB><CR>) is returned
// as an empty, non-nil slice.
func (r *Reader) ReadFrame() ([]byte, error) {
	r.skipped = 0
	if r.discarding {
		if err := r.discardFrame(); err != nil {
			return nil, err
		}
	}
	if err := r.findStart(); err != nil {
		return nil, err
	}
	var frame []byte
	for {
		chunk, err := r.fill()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		end := bytes.IndexByte(chunk, endBlock)
		body := chunk
		if end >= 0 {
			body = chunk[:end]
		}
		restart := bytes.IndexByte(body, startBlock)
		if restart >= 0 {
			body = body[:restart]
		}
		if len(frame)+len(body) > r.max {
			frame = append(frame, body[:r.max-len(frame)]...)
			switch {
			case restart >= 0: // the oversized frame was abandoned; keep the new one
				r.br.Discard(restart)
			case end >= 0:
				r.br.Discard(end + 1)
				r.consumeTrailer()
			default:
				r.br.Discard(len(body))
				r.discarding = true
			}
			return frame, fmt.Errorf("%w: more than %d bytes", ErrFrameTooLarge, r.max)
		}
		if restart >= 0 {
			// The sender started over: drop what we had, the old start block included.
			r.skipped += 1 + len(frame) + restart
			frame = frame[:0]
			r.br.Discard(restart + 1)
			continue
		}
		if frame == nil {
			frame = make([]byte, 0, len(body))
		}
		frame = append(frame, body...)
		if end < 0 {
			r.br.Discard(len(body))
			continue
		}
		r.br.Discard(end + 1)
		r.consumeTrailer()
		return frame, nil
	}
}

// fill returns every byte buffered, reading at least one when none is.
func (r *Reader) fill() ([]byte, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, err
		}
	}
	return r.br.Peek(r.br.Buffered())
}

// consumeTrailer eats the <CR> after an end block if it has already arrived, and otherwise
// remembers that a <CR> may still come.
func (r *Reader) consumeTrailer() {
	r.afterEnd = false
	if r.br.Buffered() == 0 {
		r.afterEnd = true
		return
	}
	if b, _ := r.br.Peek(1); b[0] == trailerCR {
		r.br.Discard(1)
	}
}

// findStart skips to just past the next start block.
func (r *Reader) findStart() error {
	for {
		chunk, err := r.fill()
		if err != nil {
			return err
		}
		if r.afterEnd {
			r.afterEnd = false
			if chunk[0] == trailerCR {
				r.br.Discard(1)
				continue
			}
		}
		if i := bytes.IndexByte(chunk, startBlock); i >= 0 {
			r.skipped += i
			r.br.Discard(i + 1)
			return nil
		}
		r.skipped += len(chunk)
		r.br.Discard(len(chunk))
	}
}

// discardFrame throws away the rest of an oversized frame, through its end block and <CR>.
func (r *Reader) discardFrame() error {
	for {
		chunk, err := r.fill()
		if err != nil {
			return err
		}
		// A start block means the oversized frame was abandoned; the new frame is kept.
		stop := bytes.IndexAny(chunk, "\x0b\x1c")
		if stop < 0 {
			r.br.Discard(len(chunk))
			continue
		}
		r.discarding = false
		if chunk[stop] == startBlock {
			r.br.Discard(stop)
			return nil
		}
		r.br.Discard(stop + 1)
		r.consumeTrailer()
		return nil
	}
}

// AppendFrame appends msg in its MLLP envelope to dst. It fails with ErrInvalidPayload when
// msg contains a start or end block byte.
func AppendFrame(dst, msg []byte) ([]byte, error) {
	if bytes.IndexByte(msg, startBlock) >= 0 || bytes.IndexByte(msg, endBlock) >= 0 {
		return dst, ErrInvalidPayload
	}
	dst = append(dst, startBlock)
	dst = append(dst, msg...)
	return append(dst, endBlock, trailerCR), nil
}

// WriteFrame writes msg in its MLLP envelope with a single Write call, so a frame is never
// interleaved with another writer's and goes out in as few packets as the kernel allows.
func WriteFrame(w io.Writer, msg []byte) error {
	buf, err := AppendFrame(make([]byte, 0, len(msg)+3), msg)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}
