package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// Hash is a stable digest of the channel as resolved: defaults applied, ${...} substituted,
// server.retention filled in. Two loads of an unchanged channel have the same hash, so a
// reload restarts only the channels whose hash changed. Comments, key order, formatting and
// the file the channel is in do not count. Files read by steps at build time (map tables)
// are not part of it.
func (c *Channel) Hash() string {
	if c.hash == "" {
		v := map[string]any{"retention": c.Retention.String()}
		if c.Conf != nil {
			v["channel"] = c.Conf.Value()
		} else {
			v["name"] = c.Name
		}
		c.hash = digest(v)
	}
	return c.hash
}

// Hash is a stable digest of the server settings; a change means a restart, since most of
// them (listeners, store, NATS) cannot change live.
func (s *Server) Hash() string {
	if s.hash == "" {
		s.hash = digest(map[string]any{
			"data_dir": s.DataDir, "admin_listen": s.Admin.Listen, "tokens": tokenValues(s.Admin.Tokens),
			"tls":   []string{s.Admin.TLS.CertFile, s.Admin.TLS.KeyFile},
			"nats":  []any{s.NATS.URL, s.NATS.Listen, s.NATS.Sync, s.NATS.Creds, s.NATS.StreamReplicas},
			"store": []string{s.Store.SQLite, s.Store.Postgres}, "retention": s.Retention.String(),
			"log": []string{s.Log.Level, s.Log.Format}, "procs": s.Procs,
		})
	}
	return s.hash
}

func tokenValues(ts []Token) [][]string {
	out := make([][]string, len(ts))
	for i, t := range ts {
		out[i] = []string{t.Name, t.Token, t.Role}
	}
	return out
}

// Hash is a digest of the whole configuration: the server and every channel in order.
func (c *Config) Hash() string {
	hs := []string{c.Server.Hash()}
	for i := range c.Channels {
		hs = append(hs, c.Channels[i].Hash())
	}
	return digest(hs)
}

func digest(v any) string {
	b, err := json.Marshal(v) // maps marshal with sorted keys: stable
	if err != nil {
		panic("config: hash: " + err.Error()) // only plain values go in
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Changes is what a reload must do to go from one configuration to another.
type Changes struct {
	Added, Removed, Changed, Unchanged []string // channel names, sorted
	Server                             bool     // the server section changed: needs a restart
}

// Diff compares two configurations channel by channel, by name and hash.
func Diff(old, new *Config) Changes {
	var ch Changes
	oldByName := map[string]*Channel{}
	for i := range old.Channels {
		oldByName[old.Channels[i].Name] = &old.Channels[i]
	}
	seen := map[string]bool{}
	for i := range new.Channels {
		n := &new.Channels[i]
		seen[n.Name] = true
		switch o, ok := oldByName[n.Name]; {
		case !ok:
			ch.Added = append(ch.Added, n.Name)
		case o.Hash() != n.Hash():
			ch.Changed = append(ch.Changed, n.Name)
		default:
			ch.Unchanged = append(ch.Unchanged, n.Name)
		}
	}
	for name := range oldByName {
		if !seen[name] {
			ch.Removed = append(ch.Removed, name)
		}
	}
	for _, l := range [][]string{ch.Added, ch.Removed, ch.Changed, ch.Unchanged} {
		slices.Sort(l)
	}
	ch.Server = old.Server.Hash() != new.Server.Hash()
	return ch
}
