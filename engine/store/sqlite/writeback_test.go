package sqlite

import (
	"os"
	"path/filepath"
	"testing"
)

// startWriteback only starts writes, so what a test can see is that it takes the files the
// checkpointer gives it: a WAL with dirty pages, and a WAL not created yet, which is not an
// error. Its effect, shorter fsyncs for everything else on the disk, is measured in bench
// (BenchmarkAckLatency beside BenchmarkDiskFsync).
func TestStartWriteback(t *testing.T) {
	dir := t.TempDir()
	wal := filepath.Join(dir, "osprey.db-wal")
	if err := os.WriteFile(wal, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := startWriteback(wal); err != nil {
		t.Errorf("file with dirty pages: %v", err)
	}
	if err := startWriteback(filepath.Join(dir, "missing-wal")); err != nil {
		t.Errorf("missing file: %v, want nil (nothing to write)", err)
	}
}
