package fhir

import (
	"crypto/sha1"
	"fmt"
	"strings"
)

// namespace is the UUID namespace of Osprey's name-based fullUrls (RFC 9562 version 5). It
// was drawn at random once; changing it would change every fullUrl.
var namespace = [16]byte{0x82, 0x6e, 0xa2, 0x2e, 0xa3, 0xa8, 0x4d, 0x94, 0xbb, 0xb3, 0x7f, 0xa4, 0x8f, 0x0b, 0x6c, 0xbd}

// nameUUID returns the version 5 UUID of name in Osprey's namespace, as "urn:uuid:…".
func nameUUID(name string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// tokenQuery returns the search "identifier=system|value", escaped for a URL query: FHIR's
// own escapes for the value (\ | , $), then percent-encoding of everything but RFC 3986
// unreserved characters and ":", "/", "@", which keeps URN and URL systems readable.
func tokenQuery(system, value string) string {
	v := strings.NewReplacer(`\`, `\\`, `|`, `\|`, `,`, `\,`, `$`, `\$`).Replace(value)
	return "identifier=" + queryEscape(system) + "|" + queryEscape(v)
}

func queryEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:/@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
