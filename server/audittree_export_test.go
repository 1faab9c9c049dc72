package server

import "context"

// SetAuditTreeHook sets the tree check's test hook (audittree.go) until
// the returned func restores it.
func SetAuditTreeHook(f func(ctx context.Context, stage string)) (restore func()) {
	old := auditTreeHook
	auditTreeHook = f
	return func() { auditTreeHook = old }
}
