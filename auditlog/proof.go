package auditlog

import (
	"encoding/base64"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// CheckEntryProof verifies, offline, that body is the entry at index of
// the log whose signed checkpoint is checkpoint: the checkpoint's
// signature by the log's public note key logKey (and its origin, which
// must be origin — or, when origin is empty, the key's name), then the
// inclusion proof (base64 hashes, leaf to root, as the API and writ's
// attestations carry them) from SHA-256(0x00 || body) to the checkpoint's
// root. It returns the opened checkpoint.
func CheckEntryProof(checkpoint []byte, logKey, origin string, index int64, body []byte, proof []string) (Checkpoint, error) {
	v, err := note.NewVerifier(logKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit log: log key: %w", err)
	}
	if origin == "" {
		origin = v.Name()
	}
	cp, err := OpenCheckpoint(checkpoint, v, origin)
	if err != nil {
		return Checkpoint{}, err
	}
	rp := make(tlog.RecordProof, len(proof))
	for i, s := range proof {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != len(rp[i]) {
			return Checkpoint{}, verifyErr(index, "inclusion proof hash %d is not a base64 SHA-256", i)
		}
		copy(rp[i][:], b)
	}
	if err := CheckInclusion(rp, cp, index, LeafHash(body)); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}
