//go:build !unix

package sqlstore

import "errors"

// freeBytes is not known on this platform: the write probe alone decides.
func freeBytes(string) (uint64, error) { return 0, errors.New("statfs: not supported") }
