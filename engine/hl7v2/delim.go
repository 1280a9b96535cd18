package hl7v2

import "fmt"

// Delimiters are the separators a message declares in MSH-1 (Field) and MSH-2 (Component,
// Repetition, Escape, Subcomponent and, from v2.7, Truncation). Truncation is 0 when MSH-2
// has four characters.
type Delimiters struct{ Field, Component, Repetition, Escape, Subcomponent, Truncation byte }

// DefaultDelimiters are the delimiters HL7 recommends and nearly every system uses: |^~\&.
var DefaultDelimiters = Delimiters{'|', '^', '~', '\\', '&', 0}

// Encoding returns MSH-2 as written: component, repetition, escape, subcomponent and the
// truncation character when there is one.
func (d Delimiters) Encoding() string {
	b := []byte{d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		b = append(b, d.Truncation)
	}
	return string(b)
}

// isDelim reports whether c separates elements (the escape character does not).
func (d *Delimiters) isDelim(c byte) bool {
	return c == d.Field || c == d.Component || c == d.Repetition || c == d.Subcomponent
}

// validate checks that the delimiters can be told apart from data and from each other.
// It returns the index (0 = field separator, 1.. = MSH-2 position) of the first bad one.
func (d Delimiters) validate() (int, error) {
	all := []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		all = append(all, d.Truncation)
	}
	for i, c := range all {
		if c <= ' ' || c >= 0x7f || isAlnum(c) {
			return i, fmt.Errorf("delimiter %q must be a printable non-alphanumeric ASCII character", c)
		}
		for _, o := range all[:i] {
			if o == c {
				return i, fmt.Errorf("delimiter %q is used twice", c)
			}
		}
	}
	return 0, nil
}

// Validate reports whether d can be used to encode a message.
func (d Delimiters) Validate() error {
	_, err := d.validate()
	if err != nil {
		return fmt.Errorf("hl7v2: %w", err)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}
