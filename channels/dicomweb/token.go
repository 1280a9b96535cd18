package dicomweb

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors of [VerifyToken].
var (
	// ErrTokenInvalid reports a token that is not a scoped token or whose signature does not
	// match the key: forged, corrupted, or minted by another Osprey.
	ErrTokenInvalid = errors.New("dicomweb: invalid scoped token")
	// ErrTokenExpired reports a well-signed token past its expiry.
	ErrTokenExpired = errors.New("dicomweb: scoped token expired")
)

// tokenPrefix marks a scoped token and its format version, so a configured bearer token can
// never be mistaken for one and the format can change without ambiguity.
const tokenPrefix = "osp1"

// KeySize is the size of a generated token key: 256 bits, the HMAC-SHA256 block-safe size.
const KeySize = 32

// NewKey returns a random key for [MintToken].
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("dicomweb: token key: %w", err)
	}
	return k, nil
}

// MintToken returns a bearer token that opens only the study studyUID on a source holding
// key, until ttl from now. It is what the plugin layer hands an AI plugin so that it can fetch
// one study's pixels by WADO-RS and nothing else.
//
// The token is "osp1.<study uid, base64url>.<expiry, unix seconds>.<HMAC-SHA256, base64url>";
// the MAC covers the prefix, the study UID and the expiry, so none can be altered.
func MintToken(key []byte, studyUID string, ttl time.Duration) string {
	return mintAt(key, studyUID, time.Now().Add(ttl))
}

func mintAt(key []byte, studyUID string, expiry time.Time) string {
	payload := tokenPrefix + "." + base64.RawURLEncoding.EncodeToString([]byte(studyUID)) + "." + strconv.FormatInt(expiry.Unix(), 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(key, payload))
}

func tokenMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// VerifyToken checks a scoped token against key at time now and returns the study it opens.
// A token with a bad signature is ErrTokenInvalid even when it is also expired, so that an
// expiry message never confirms a forged token's shape.
func VerifyToken(key []byte, token string, now time.Time) (studyUID string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 4 || parts[0] != tokenPrefix || len(key) == 0 {
		return "", ErrTokenInvalid
	}
	payload := strings.Join(parts[:3], ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || !hmac.Equal(sig, tokenMAC(key, payload)) {
		return "", ErrTokenInvalid
	}
	uid, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ErrTokenInvalid
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", ErrTokenInvalid
	}
	if !now.Before(time.Unix(exp, 0)) {
		return "", ErrTokenExpired
	}
	return string(uid), nil
}

// isScoped tells a scoped token from a configured bearer token by its shape alone.
func isScoped(token string) bool { return strings.HasPrefix(token, tokenPrefix+".") }
