package rules

import "github.com/osprey-health/osprey/engine/hl7v2"

// Env is what an expression sees. Its fields are the only top-level names an expression may
// use besides the functions documented in docs/rules.md.
//
// Env and MsgView deliberately have no exported methods other than the ones listed for
// expressions: expr turns every exported method into something an expression can call, and a
// filter must never be able to reach the mutable message.
type Env struct {
	Msg     *MsgView          `expr:"msg"`
	Channel string            `expr:"channel"`
	Meta    map[string]string `expr:"meta"` // source facts such as remote_addr, tls_subject, listener
	// Study is the imaging study of a study message; Order is the order it joined. Both
	// may be nil: expressions then see zero values (see StudyView and OrderView).
	Study *StudyView `expr:"study"`
	Order *OrderView `expr:"order"`
}

// MsgView is the read-only face of an HL7v2 message inside expressions. The header fields
// are read once, when the view is made (and again after each transform step), so a filter
// that tests msg.Type many times costs one lookup.
type MsgView struct {
	Type      string // MSH-9.1, e.g. "ORM"
	Event     string // MSH-9.2, e.g. "O01"
	ControlID string // MSH-10
	Version   string // MSH-12.1, e.g. "2.5.1"
	Sender    string // MSH-3.1, the sending application
	Facility  string // MSH-4.1, the sending facility

	m *hl7v2.Message
}

// NewEnv builds the environment for one message. A nil message gives a view whose fields
// are all empty, which is what a filter over a message that failed to parse should see.
func NewEnv(m *hl7v2.Message, channel string, meta map[string]string) Env {
	v := &MsgView{m: m}
	v.refresh()
	return Env{Msg: v, Channel: channel, Meta: meta}
}

// refresh rereads the header fields; steps call it after editing the message so that a
// later step's expression sees the edit.
func (v *MsgView) refresh() {
	if v.m == nil {
		return
	}
	v.Type, _ = v.m.At(header.typ)
	v.Event, _ = v.m.At(header.event)
	v.ControlID, _ = v.m.At(header.controlID)
	v.Version, _ = v.m.At(header.version)
	v.Sender, _ = v.m.At(header.sender)
	v.Facility, _ = v.m.At(header.facility)
}

// header holds the MSH paths behind MsgView's fields, parsed once.
var header = struct{ typ, event, controlID, version, sender, facility hl7v2.Path }{
	mustPath("MSH-9.1"), mustPath("MSH-9.2"), mustPath("MSH-10"),
	mustPath("MSH-12.1"), mustPath("MSH-3.1"), mustPath("MSH-4.1"),
}

func mustPath(s string) hl7v2.Path {
	p, err := hl7v2.ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Get returns the unescaped value at an HL7 path such as "PID-5.1" or "PID-3[2].1", or ""
// when the message has no such field. It is meant to be called from expressions.
func (v *MsgView) Get(path string) string {
	if v == nil || v.m == nil {
		return ""
	}
	return v.m.Get(path)
}

// at is Get for a parsed path.
func (v *MsgView) at(p hl7v2.Path) string {
	if v == nil || v.m == nil {
		return ""
	}
	s, _ := v.m.At(p)
	return s
}

// Has reports whether the field at path is present and not empty.
func (v *MsgView) Has(path string) bool {
	if v == nil || v.m == nil {
		return false
	}
	return v.m.Get(path) != ""
}

// Count returns how many segments of the given name (e.g. "OBX") the message has.
func (v *MsgView) Count(segment string) int {
	if v == nil || v.m == nil {
		return 0
	}
	return v.m.Count(segment)
}
