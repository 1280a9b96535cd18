package dicom

import (
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// UUIDRoot is the root under which a UUID is written as a UID: "2.25." followed by the UUID's
// 128 bits as an unsigned decimal integer (PS3.5 Annex B.2, ISO/IEC 9834-8).
const UUIDRoot = "2.25"

// ImplementationVersionName names Osprey as the writer in the File Meta Information.
const ImplementationVersionName = "OSPREY"

// ImplementationClassUID identifies Osprey's DICOM writer in the File Meta Information. It
// is a name-based UUID so that it needs no registered root and never changes.
var ImplementationClassUID = NameUID("osprey-health/osprey", "implementation-class")

// uidNamespace is the name-based UUID namespace for Osprey UIDs, itself a name-based UUID in
// the URL namespace of RFC 9562, so that NameUID values cannot collide with another
// generator's name-based UUIDs for the same names.
var uidNamespace = sha1UUID([16]byte{
	0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
}, "https://github.com/osprey-health/osprey/uid")

// ErrInvalidUID reports a string that is not a valid DICOM UID.
var ErrInvalidUID = errors.New("invalid uid")

// NewUID returns a random UID under [UUIDRoot] from a version 4 UUID.
func NewUID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("dicom: new uid: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return UUIDToUID(u), nil
}

// NameUID returns a UID under [UUIDRoot] from a version 5 (SHA-1, name-based) UUID of the
// parts joined with "/". The same parts always give the same UID, which makes generated test
// data reproducible; different parts give different UIDs with overwhelming probability.
func NameUID(parts ...string) string {
	return UUIDToUID(sha1UUID(uidNamespace, strings.Join(parts, "/")))
}

// UUIDToUID writes a UUID as a UID under [UUIDRoot]. The result is at most 44 characters,
// well inside the 64 a UI value may hold.
func UUIDToUID(u [16]byte) string {
	return UUIDRoot + "." + new(big.Int).SetBytes(u[:]).String()
}

// ValidUID reports whether s is a syntactically valid UID: at most 64 characters of
// dot-separated components, each a run of digits without a leading zero (PS3.5 9.1).
func ValidUID(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("dicom: uid %q: length %d not in 1..64: %w", s, len(s), ErrInvalidUID)
	}
	for _, c := range strings.Split(s, ".") {
		if c == "" {
			return fmt.Errorf("dicom: uid %q: empty component: %w", s, ErrInvalidUID)
		}
		if len(c) > 1 && c[0] == '0' {
			return fmt.Errorf("dicom: uid %q: component %q has a leading zero: %w", s, c, ErrInvalidUID)
		}
		for _, r := range c {
			if r < '0' || r > '9' {
				return fmt.Errorf("dicom: uid %q: component %q is not numeric: %w", s, c, ErrInvalidUID)
			}
		}
	}
	return nil
}

func sha1UUID(namespace [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}
