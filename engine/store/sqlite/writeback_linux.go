package sqlite

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing path's dirty pages to the disk and returns
// without waiting for them (sync_file_range with SYNC_FILE_RANGE_WRITE alone). It makes
// nothing durable; it only spreads the writes that the next fsync would otherwise do at once.
// A missing file has nothing to write.
func startWriteback(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
