package tlsconf

import (
	"crypto/tls"
	"os"
	"sync"
)

// keyPair is a certificate and key read from files and read again when either file changes,
// so a renewed certificate is used for new connections without restarting the channel.
// The files are checked at every handshake: two stat calls, nothing beside a handshake.
type keyPair struct {
	certFile, keyFile string

	mu                sync.Mutex
	cert              *tls.Certificate
	certStat, keyStat fileStamp
}

// fileStamp is what tells a changed file from the one loaded.
type fileStamp struct {
	mod  int64 // modification time, Unix nanoseconds
	size int64
}

func stamp(file string) (fileStamp, error) {
	st, err := os.Stat(file)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{st.ModTime().UnixNano(), st.Size()}, nil
}

func loadKeyPair(certFile, keyFile string) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// load reads both files; the caller holds mu, or k is not shared yet.
func (k *keyPair) load() error {
	cs, err := stamp(k.certFile)
	if err != nil {
		return err
	}
	ks, err := stamp(k.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return err
	}
	k.cert, k.certStat, k.keyStat = &cert, cs, ks
	return nil
}

// get returns the current certificate, reloading it if the files changed. A reload that
// fails (files half written during a renewal, a key that does not match yet) keeps serving
// the previous certificate and is tried again at the next handshake.
func (k *keyPair) get() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, err1 := stamp(k.certFile)
	ks, err2 := stamp(k.keyFile)
	if err1 == nil && err2 == nil && (cs != k.certStat || ks != k.keyStat) {
		k.load()
	}
	return k.cert
}
