package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// adminCreds is the name of the tools' credentials file in <data dir>/creds.
const adminCreds = "admin.creds"

// credsDir is where serve writes the NATS credentials of plugins and tools.
func credsDir(dataDir string) string { return filepath.Join(dataDir, "creds") }

// writeCreds gives every configured plugin a credentials file limited to its own subjects,
// and tools (osprey plugin check, the nats CLI) one with full access. An external cluster
// manages its own users: nothing is written, and the log says so once.
func writeCreds(b *broker.Broker, cfg *config.Config, dataDir string, log *slog.Logger) error {
	dir := credsDir(dataDir)
	write := func(name string, p *broker.Permissions) error {
		user := "tools"
		if p != nil {
			user = "plugin-" + name
		}
		c, err := b.Creds(user, p)
		if err != nil {
			return err
		}
		return broker.WriteCreds(filepath.Join(dir, name+".creds"), c)
	}
	if err := write("admin", nil); err != nil {
		if errors.Is(err, broker.ErrExternalAuth) {
			if len(cfg.Plugins()) > 0 {
				log.Info("external NATS: plugins use credentials from the cluster's operator; none are written")
			}
			return nil
		}
		return fmt.Errorf("credentials: %w", err)
	}
	for _, p := range cfg.Plugins() {
		perm := protocol.PluginPermissions(p.Name)
		bp := &broker.Permissions{Publish: perm.Publish, Subscribe: perm.Subscribe, AllowResponses: perm.AllowResponses}
		if err := write(p.Name, bp); err != nil {
			return fmt.Errorf("credentials of plugin %s: %w", p.Name, err)
		}
	}
	log.Info("NATS credentials written", "dir", dir, "plugins", len(cfg.Plugins()))
	return nil
}
