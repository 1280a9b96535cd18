package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ErrExternalAuth means credentials were asked of a broker connected to an external server:
// there, whoever runs the cluster issues them (nsc, an auth callout, the server config).
var ErrExternalAuth = errors.New("credentials are managed by the external cluster")

// Permissions is what a user's credentials allow on the embedded server: the subjects it may
// publish and subscribe to (NATS wildcards allowed). An empty list allows nothing, never
// everything.
type Permissions struct {
	Publish   []string
	Subscribe []string
	// AllowResponses lets the user reply once, within a minute, to each request it receives
	// (micro discovery on $SRV), without the right to publish on every _INBOX subject.
	AllowResponses bool
}

// Response permission of users with AllowResponses: one reply per request, sent within the
// minute, which is all the micro framework needs.
const (
	responseMaxMsgs = 1
	responseExpires = time.Minute
)

// Names of the key files in Config.KeysDir. Only the operator and the application account
// need to last: the account key signs the users' credentials and names the account whose
// JetStream data the store holds; the system account is internal and made fresh each start.
const (
	operatorKeyFile = "operator.nk"
	accountKeyFile  = "account.nk"
)

// Names shown in the JWTs, for whoever decodes a credentials file.
const (
	operatorName   = "osprey"
	accountName    = "OSPREY"
	systemName     = "SYS"
	internalUserID = "osprey-internal"
)

// authority is the embedded server's chain of trust: an operator, the application account
// everything of Osprey lives in, a system account, and the user the broker's own in-process
// connections authenticate as.
type authority struct {
	operator *jwt.OperatorClaims
	account  nkeys.KeyPair
	accPub   string
	sysPub   string
	resolver *server.MemAccResolver

	internalJWT  string
	internalSeed string
}

// newAuthority loads the operator and account keys from keysDir, creating them on first use,
// and signs the account JWTs the server trusts. created lists the key files it wrote.
func newAuthority(keysDir string) (a *authority, created []string, err error) {
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("broker: keys dir: %w", err)
	}
	opKP, made, err := loadOrCreateKey(filepath.Join(keysDir, operatorKeyFile), nkeys.PrefixByteOperator)
	if err != nil {
		return nil, nil, err
	}
	if made {
		created = append(created, operatorKeyFile)
	}
	accKP, made, err := loadOrCreateKey(filepath.Join(keysDir, accountKeyFile), nkeys.PrefixByteAccount)
	if err != nil {
		return nil, nil, err
	}
	if made {
		created = append(created, accountKeyFile)
	}
	sysKP, err := nkeys.CreateAccount()
	if err != nil {
		return nil, nil, fmt.Errorf("broker: create system account key: %w", err)
	}
	opPub, _ := opKP.PublicKey()
	accPub, _ := accKP.PublicKey()
	sysPub, _ := sysKP.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = operatorName
	oc.SystemAccount = sysPub
	if _, err := oc.Encode(opKP); err != nil { // Encode fills in the issuer the server checks
		return nil, nil, fmt.Errorf("broker: sign operator: %w", err)
	}

	resolver := &server.MemAccResolver{}
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = accountName
	// JetStream is bounded by the disk, not by the account: the engine's queues must be
	// able to grow while a destination is down.
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit,
		Streams: jwt.NoLimit, Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit,
		MemoryMaxStreamBytes: jwt.NoLimit, DiskMaxStreamBytes: jwt.NoLimit,
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = systemName
	for _, c := range []*jwt.AccountClaims{ac, sc} {
		token, err := c.Encode(opKP)
		if err != nil {
			return nil, nil, fmt.Errorf("broker: sign account %s: %w", c.Name, err)
		}
		if err := resolver.Store(c.Subject, token); err != nil {
			return nil, nil, fmt.Errorf("broker: store account %s: %w", c.Name, err)
		}
	}

	a = &authority{operator: oc, account: accKP, accPub: accPub, sysPub: sysPub, resolver: resolver}
	// The internal user lives only in this process: minted per start, never written down.
	token, seed, err := a.mintUser(internalUserID, nil)
	if err != nil {
		return nil, nil, err
	}
	a.internalJWT, a.internalSeed = token, string(seed)
	return a, created, nil
}

// configure puts the server into operator mode: only users signed by the account connect.
func (a *authority) configure(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{a.operator}
	opts.AccountResolver = a.resolver
	opts.SystemAccount = a.sysPub
}

// connOption authenticates an in-process connection as the internal user.
func (a *authority) connOption() nats.Option {
	return nats.UserJWTAndSeed(a.internalJWT, a.internalSeed)
}

// userCreds mints a new user of the application account limited to p (nil: everything) and
// returns its .creds file content.
func (a *authority) userCreds(name string, p *Permissions) ([]byte, error) {
	token, seed, err := a.mintUser(name, p)
	if err != nil {
		return nil, err
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return nil, fmt.Errorf("broker: creds for %s: %w", name, err)
	}
	return creds, nil
}

// mintUser returns the JWT and nkey seed of a new user of the application account.
func (a *authority) mintUser(name string, p *Permissions) (token string, seed []byte, err error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, fmt.Errorf("broker: creds for %s: %w", name, err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	if p != nil {
		// In a user JWT an empty allow list means no restriction; here it means none allowed.
		uc.Pub = subjectPermission(p.Publish)
		uc.Sub = subjectPermission(p.Subscribe)
		if p.AllowResponses {
			uc.Resp = &jwt.ResponsePermission{MaxMsgs: responseMaxMsgs, Expires: responseExpires}
		}
	}
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	if vr.IsBlocking(true) {
		return "", nil, fmt.Errorf("broker: creds for %s: %w", name, errors.Join(vr.Errors()...))
	}
	if token, err = uc.Encode(a.account); err != nil {
		return "", nil, fmt.Errorf("broker: creds for %s: sign: %w", name, err)
	}
	seed, _ = ukp.Seed()
	return token, seed, nil
}

func subjectPermission(subjects []string) jwt.Permission {
	if len(subjects) == 0 {
		return jwt.Permission{Deny: jwt.StringList{">"}}
	}
	return jwt.Permission{Allow: append(jwt.StringList(nil), subjects...)}
}

// Creds returns the content of a NATS credentials file (user JWT and nkey seed, as
// nats.UserCredentials and the nats CLI read it) for a new user of the embedded server named
// user, limited to p; p == nil grants everything (for the admin and tools). Each call mints a
// new user; earlier credentials stay valid, across restarts too when Config.KeysDir is set.
// Against an external server it returns an error wrapping ErrExternalAuth.
func (b *Broker) Creds(user string, p *Permissions) ([]byte, error) {
	if b.auth == nil {
		return nil, fmt.Errorf("broker: creds for %s: %w", user, ErrExternalAuth)
	}
	return b.auth.userCreds(user, p)
}

// WriteCreds writes a credentials file atomically (a reader sees the old content or the new,
// never half of it) with mode 0600, creating its directory with mode 0700 when missing.
func WriteCreds(path string, creds []byte) error {
	if err := writeSecret(path, creds); err != nil {
		return fmt.Errorf("broker: write creds: %w", err)
	}
	return nil
}

// writeSecret writes data to path through a temporary file in the same directory, fsynced
// before the rename so that a crash leaves either file whole.
func writeSecret(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: not every filesystem syncs directories
		d.Close()
	}
	return nil
}

// loadOrCreateKey reads the nkey seed in path, or creates one of kind prefix when the file
// does not exist. A key that exists but cannot be used is an error, never replaced: a new
// account key would leave the credentials already handed out, and the JetStream data stored
// under the old account, behind.
func loadOrCreateKey(path string, prefix nkeys.PrefixByte) (kp nkeys.KeyPair, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if kp, err = nkeys.CreatePair(prefix); err != nil {
			return nil, false, fmt.Errorf("broker: create key %s: %w", path, err)
		}
		seed, _ := kp.Seed()
		if err := writeSecret(path, append(seed, '\n')); err != nil {
			return nil, false, fmt.Errorf("broker: write key %s: %w", path, err)
		}
		return kp, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("broker: read key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("broker: read key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("broker: key %s is readable by others (mode %v): chmod 600 it, and consider the credentials it signed exposed",
			path, fi.Mode().Perm())
	}
	kp, err = nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
	if err != nil {
		return nil, false, fmt.Errorf("broker: key %s: not an nkey seed: %w", path, err)
	}
	pub, _ := kp.PublicKey()
	if got := nkeys.Prefix(pub); got != prefix {
		return nil, false, fmt.Errorf("broker: key %s: holds a %v key, want %v", path, got, prefix)
	}
	return kp, false, nil
}

// orphanedAccounts lists the accounts other than accPub that have JetStream data in
// storeDir: what a lost or replaced account key leaves behind.
func orphanedAccounts(storeDir, accPub string) []string {
	entries, err := os.ReadDir(filepath.Join(storeDir, "jetstream"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() && name != accPub && (name == "$G" || nkeys.IsValidPublicAccountKey(name)) {
			out = append(out, name)
		}
	}
	return out
}
