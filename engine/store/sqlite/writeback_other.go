//go:build !linux

package sqlite

// startWriteback is Linux's sync_file_range; elsewhere the checkpoint's fsync does all the
// writing, as SQLite's own checkpoints do.
func startWriteback(string) error { return nil }
